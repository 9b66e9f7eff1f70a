"""A downstream model = pre-trained encoder + head, wrapped as an ART ``PyTorchClassifier``."""

from __future__ import annotations

import copy
from typing import Any

import torch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_ssl.estimators.encoder import PyTorchEncoder
from art_ssl.models.heads import MLPHead, linear_head

HEADS = ("linear", "mlp")


def mean_std_of(estimator: Any) -> tuple[list[float], list[float]] | None:
    """The per-channel ``(mean, std)`` standardisation among an ART estimator's preprocessing operations, or
    ``None`` when it has none (what a file's metadata records so that the estimator can be rebuilt)."""
    import numpy as np

    for op in getattr(estimator, "preprocessing_operations", None) or []:
        if hasattr(op, "mean") and hasattr(op, "std"):
            return np.asarray(op.mean).reshape(-1).tolist(), np.asarray(op.std).reshape(-1).tolist()
    return None


class EncoderWithHead(nn.Module):
    """
    ``head(encoder(x))``. With ``freeze_encoder`` the encoder's weights take no gradient and its BatchNorm layers
    stay in eval mode even when the module is put in train mode (a linear probe must not move the encoder's
    running statistics).

    :param encoder: Feature extractor (N, C, H, W) -> (N, D).
    :param head: Module (N, D) -> (N, nb_classes).
    :param freeze_encoder: Freeze the encoder.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, freeze_encoder: bool = False) -> None:
        super().__init__()
        for name, value in (("encoder", encoder), ("head", head)):
            if not isinstance(value, nn.Module):
                raise TypeError(f"`{name}` must be a torch.nn.Module, got {type(value).__name__}.")
        self.encoder = encoder
        self.head = head
        self.freeze_encoder = freeze_encoder

    @property
    def freeze_encoder(self) -> bool:
        return self._freeze_encoder

    @freeze_encoder.setter
    def freeze_encoder(self, value: bool) -> None:
        self._freeze_encoder = bool(value)
        self.encoder.requires_grad_(not value)
        self.train(self.training)

    def train(self, mode: bool = True) -> EncoderWithHead:
        super().train(mode)
        if self._freeze_encoder:
            self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def encoder_classifier(
    encoder: nn.Module | PyTorchEncoder,
    nb_classes: int,
    head: str | nn.Module = "linear",
    freeze_encoder: bool = True,
    input_shape: tuple[int, ...] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    learning_rate: float = 1e-3,
    loss: nn.Module | None = None,
    clip_values: tuple[float, float] | None = (0.0, 1.0),
    preprocessing: Any = None,
    device_type: str = "gpu",
    mlp_hidden: tuple[int, ...] = (512, 512),
    mlp_dropout: float = 0.5,
    copy_encoder: bool = True,
) -> PyTorchClassifier:
    """
    Put a head on an encoder and wrap the result as an ART ``PyTorchClassifier`` (model: :class:`EncoderWithHead`).

    The classifier works on a deep copy of the encoder module (``copy_encoder=True``, the default): freezing or
    training it never changes the caller's module (its weights, ``requires_grad`` flags, train/eval mode), and a
    call that fails leaves it as it was. The trained encoder is ``classifier.model.encoder``. With
    ``copy_encoder=False`` the module is used in place (no copy, less memory) and freezing sets its
    ``requires_grad`` flags.

    :param encoder: ``nn.Module`` or :class:`PyTorchEncoder` (whose input shape, clip values and preprocessing are
                    reused unless given here).
    :param nb_classes: Number of downstream classes.
    :param head: ``"linear"``, ``"mlp"`` (the papers' 512-512-C with dropout) or a module (N, D) -> (N, C).
    :param freeze_encoder: Train only the head (linear probing); ``False`` fine-tunes the whole model.
    :param input_shape: ``(C, H, W)``; required when ``encoder`` is a bare module.
    :param optimizer: Optimiser for ART's ``fit``; default Adam over the trainable parameters.
    :param learning_rate: Learning rate of the default optimiser.
    :param loss: Training loss; default cross-entropy.
    :param clip_values: Valid pixel range.
    :param preprocessing: ``(mean, std)`` normalisation or an ART Preprocessor.
    :param device_type: ``"gpu"`` or ``"cpu"``.
    :param mlp_hidden: Hidden sizes of the ``"mlp"`` head.
    :param mlp_dropout: Dropout of the ``"mlp"`` head.
    :param copy_encoder: Work on a copy of the encoder module (see above).
    """
    if isinstance(nb_classes, bool) or not isinstance(nb_classes, int) or nb_classes < 2:
        raise ValueError(f"`nb_classes` must be an int >= 2, got {nb_classes!r}.")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
        raise ValueError(f"`learning_rate` must be a number > 0, got {learning_rate!r}.")
    if not isinstance(freeze_encoder, bool):
        raise TypeError(f"`freeze_encoder` must be a bool, got {freeze_encoder!r}.")
    if not isinstance(copy_encoder, bool):
        raise TypeError(f"`copy_encoder` must be a bool, got {copy_encoder!r}.")
    if isinstance(encoder, PyTorchEncoder):
        input_shape = input_shape or encoder.input_shape
        preprocessing = encoder.preprocessing if preprocessing is None else preprocessing
        embedding_dim = encoder.embedding_dim
        module = encoder.model
    elif isinstance(encoder, nn.Module):
        if input_shape is None:
            raise ValueError("`input_shape` (C, H, W) is required when `encoder` is an nn.Module.")
        module = copy.deepcopy(encoder) if copy_encoder else encoder  # probed below: moved to the CPU, run
        embedding_dim = PyTorchEncoder(module, tuple(input_shape), device_type="cpu").embedding_dim
    else:
        raise TypeError(f"`encoder` must be an nn.Module or a PyTorchEncoder, got {type(encoder).__name__}.")
    if isinstance(head, str):
        if head not in HEADS:
            raise ValueError(f"`head` must be one of {HEADS} or an nn.Module, got {head!r}.")
        head_module: nn.Module = (
            linear_head(embedding_dim, nb_classes)
            if head == "linear"
            else MLPHead(embedding_dim, nb_classes, mlp_hidden, mlp_dropout)
        )
    elif isinstance(head, nn.Module):
        head_module = head
    else:
        raise TypeError(f"`head` must be 'linear', 'mlp' or an nn.Module, got {type(head).__name__}.")
    if copy_encoder and isinstance(encoder, PyTorchEncoder):
        module = copy.deepcopy(module)
    model = EncoderWithHead(module, head_module, freeze_encoder=freeze_encoder)
    if optimizer is None:
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    return PyTorchClassifier(
        model=model,
        loss=loss or nn.CrossEntropyLoss(),
        input_shape=tuple(input_shape),
        nb_classes=nb_classes,
        optimizer=optimizer,
        clip_values=clip_values,
        preprocessing=(0.0, 1.0) if preprocessing is None else preprocessing,
        device_type=device_type,
    )
