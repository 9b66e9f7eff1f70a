"""
ART estimator for a bare feature extractor (an SSL encoder): predictions are embeddings, not class scores.

ART 1.20 has estimators for classifiers, detectors and generators but none whose output is an embedding; attacks
that only need gradients of a loss on the output (``LossGradientsMixin``) or layer activations
(``NeuralNetworkMixin``), such as ART's ``FeatureAdversariesPyTorch``, run on this one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from art.estimators.pytorch import PyTorchEstimator
from torch import nn

from art_ssl.core.batching import map_batches
from art_ssl.core.checks import check_images
from art_ssl.core.hooks import layer_outputs, resolve_layer
from art_ssl.core.losses import negative_cosine
from art_ssl.core.probing import output_dim

if TYPE_CHECKING:
    from art.defences.postprocessor import Postprocessor
    from art.defences.preprocessor import Preprocessor

logger = logging.getLogger(__name__)

EmbeddingLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def negative_cosine_loss(embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample ``-cos(f(x), y)``: lower when the embedding points the way of the target embedding."""
    return negative_cosine(embeddings, targets)


class PyTorchEncoder(PyTorchEstimator):
    """
    ART estimator wrapping a PyTorch encoder ``f: (N, C, H, W) -> (N, D)``. ``PyTorchEstimator`` already brings
    ``NeuralNetworkMixin`` and ``LossGradientsMixin``, so ``isinstance(encoder, LossGradientsMixin)`` holds.

    Inputs are pixels in ``clip_values`` (default [0, 1]); normalisation belongs in ``preprocessing`` so that
    gradients and perturbation budgets are always in pixel space.
    """

    estimator_params = PyTorchEstimator.estimator_params + ["input_shape", "loss"]

    def __init__(
        self,
        model: nn.Module,
        input_shape: tuple[int, ...],
        loss: EmbeddingLoss | None = None,
        clip_values: tuple[float, float] | None = (0.0, 1.0),
        channels_first: bool = True,
        preprocessing_defences: Preprocessor | list[Preprocessor] | None = None,
        postprocessing_defences: Postprocessor | list[Postprocessor] | None = None,
        preprocessing: tuple[Any, Any] | Preprocessor | None = None,
        device_type: str = "gpu",
    ) -> None:
        """
        :param model: The encoder, an ``nn.Module`` returning embeddings of shape (N, D).
        :param input_shape: Shape of one input, ``(C, H, W)``.
        :param loss: Per-sample loss ``loss(embeddings, target_embeddings) -> (N,)`` used by ``loss_gradient``;
                     default :func:`negative_cosine_loss`.
        :param clip_values: ``(min, max)`` of valid pixels.
        :param channels_first: Must be ``True`` (NCHW), as PyTorch models expect.
        :param preprocessing_defences: ART preprocessing defence(s).
        :param postprocessing_defences: ART postprocessing defence(s), applied to embeddings.
        :param preprocessing: ``(mean, std)`` normalisation applied inside the estimator, or an ART Preprocessor.
        :param device_type: ``"gpu"`` (CUDA when available) or ``"cpu"``.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
        if isinstance(model, torch.jit.ScriptModule):
            # ScriptModules refuse forward hooks (get_activations, PAP, SSP, distillation): run their children
            # through hookable shells where that reproduces the module (art_ssl.estimators.torchscript).
            from art_ssl.estimators.torchscript import wrap_scripted

            model = wrap_scripted(model, tuple(int(s) for s in input_shape))
        if (
            not isinstance(input_shape, (tuple, list))
            or len(input_shape) != 3
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in input_shape)
        ):
            raise ValueError(f"`input_shape` must be (C, H, W) with positive ints, got {input_shape!r}.")
        if not channels_first:
            raise ValueError("`channels_first` must be True: PyTorchEncoder takes NCHW inputs.")
        if loss is not None and not callable(loss):
            raise TypeError(f"`loss` must be callable (embeddings, targets) -> per-sample loss, got {loss!r}.")
        if device_type not in ("gpu", "cpu"):
            raise ValueError(f"`device_type` must be 'gpu' or 'cpu', got {device_type!r}.")
        if isinstance(preprocessing, (tuple, list)) and len(preprocessing) == 2:
            # (mean, std): a std of 0 (or NaN) divides by zero and gives NaN embeddings silently, as ART does not check
            mean, std = (np.asarray(v, dtype=np.float64) for v in preprocessing)
            if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
                raise ValueError(f"`preprocessing` (mean, std) needs finite values and std > 0, got {preprocessing!r}.")
        super().__init__(
            model=model,
            clip_values=clip_values,
            channels_first=channels_first,
            preprocessing_defences=preprocessing_defences,
            postprocessing_defences=postprocessing_defences,
            preprocessing=(0.0, 1.0) if preprocessing is None else preprocessing,
            device_type=device_type,
        )
        self._input_shape = tuple(int(s) for s in input_shape)
        self._loss: EmbeddingLoss = loss or negative_cosine_loss
        self._model: nn.Module = model.to(self._device)
        self._layer_names = [name for name, _ in model.named_modules() if name]
        self._embedding_dim: int | None = None

    # ------------------------------------------------------------------ properties
    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._input_shape

    @property
    def model(self) -> nn.Module:
        return self._model

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def loss(self) -> EmbeddingLoss:
        return self._loss

    @property
    def embedding_dim(self) -> int:
        """Size D of the embeddings, found once with a forward pass."""
        if self._embedding_dim is None:
            self._embedding_dim = output_dim(self._model, input_shape=self._input_shape, device=self._device)
        return self._embedding_dim

    # ------------------------------------------------------------------ ART API
    def predict(self, x: np.ndarray, batch_size: int = 128, training_mode: bool = False, **kwargs) -> np.ndarray:
        """
        Embeddings of ``x``.

        :param x: Images, float (N, C, H, W) within ``clip_values``.
        :param batch_size: Images per forward pass.
        :param training_mode: Run in train mode (BatchNorm batch statistics, dropout) instead of eval mode.
        :return: Embeddings, float32 (N, D).
        """
        x = check_images(x, "x", self._input_shape, self.clip_values)
        _check_batch_size(batch_size)
        self._model.train(mode=training_mode)
        x_pre, _ = self._apply_preprocessing(x, y=None, fit=False)
        embeddings = map_batches(
            lambda xb: self._model(torch.from_numpy(np.ascontiguousarray(xb)).to(self._device)).float().cpu(),
            x_pre,
            batch_size=batch_size,
            no_grad=True,
        )
        return self._apply_postprocessing(embeddings.numpy(), fit=False)

    def compute_loss(
        self, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, reduction: str = "none", **kwargs
    ) -> np.ndarray | torch.Tensor:
        """
        The embedding loss ``loss(f(x), y)``.

        :param x: Images (numpy or torch).
        :param y: Target embeddings (N, D).
        :param reduction: ``"none"`` (per sample), ``"mean"`` or ``"sum"``.
        """
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"`reduction` must be 'none', 'mean' or 'sum', got {reduction!r}.")
        framework = isinstance(x, torch.Tensor)
        x_t, y_t = self._prepare(x, y)
        self._model.eval()
        with torch.no_grad():
            x_pre, _ = self._apply_preprocessing(x_t, y=None, fit=False, no_grad=True)
            loss = self._loss(self._model(x_pre), y_t)
        loss = {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]
        return loss if framework else loss.cpu().numpy()

    def loss_gradient(
        self, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, training_mode: bool = False, **kwargs
    ) -> np.ndarray | torch.Tensor:
        """
        Gradient of the summed per-sample loss ``sum_i loss(f(x_i), y_i)`` w.r.t. ``x``, in pixel space
        (through ``preprocessing``). Each sample's gradient is independent of the batch it came in.

        :param x: Images, numpy or torch (torch in -> torch out, on the estimator's device).
        :param y: Target embeddings (N, D), e.g. ``predict`` of other images.
        :param training_mode: Run the model in train mode.
        :return: Gradients of the same shape as ``x``.
        """
        framework = isinstance(x, torch.Tensor)
        x_t, y_t = self._prepare(x, y)
        x_t = x_t.detach().clone().requires_grad_(True)
        self._model.train(mode=training_mode)
        x_pre, _ = self._apply_preprocessing(x_t, y=None, fit=False, no_grad=False)
        loss = self._loss(self._model(x_pre), y_t).sum()
        (grad,) = torch.autograd.grad(loss, x_t)
        if not torch.isfinite(grad).all():
            raise ValueError("The loss gradient contains NaN or infinite values.")
        return grad if framework else grad.cpu().numpy()

    def get_activations(
        self,
        x: np.ndarray | torch.Tensor,
        layer: int | str | None = None,
        batch_size: int = 128,
        framework: bool = False,
    ) -> np.ndarray | torch.Tensor:
        """
        Output of one layer, by module name (as in ``model.named_modules()``) or index into ``layer_names``.
        Hooks are removed after the call and the forward pass stops at the layer.

        :param x: Images (numpy or torch).
        :param layer: Module name or index; ``None`` means the embedding (the model's output).
        :param batch_size: Images per forward pass (numpy input).
        :param framework: Return a torch tensor that keeps the autograd graph (as ART's feature attacks need).
        """
        _check_batch_size(batch_size)
        name = None if layer is None else resolve_layer(self._model, layer, self._layer_names)
        self._model.eval()

        def run(batch: torch.Tensor) -> torch.Tensor:
            x_pre, _ = self._apply_preprocessing(batch, y=None, fit=False, no_grad=not framework)
            if name is None:
                return self._model(x_pre)
            out = layer_outputs(self._model, x_pre, [name])[name]
            return out[0] if isinstance(out, (tuple, list)) else out  # transformer blocks may return (hidden, ...)

        if framework:
            x_t = x.to(self._device) if isinstance(x, torch.Tensor) else self._to_tensor(x)
            return run(x_t)
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        x = check_images(x, "x", self._input_shape, self.clip_values)
        outputs = map_batches(
            lambda xb: run(torch.from_numpy(xb).to(self._device)).cpu(), x, batch_size=batch_size, no_grad=True
        )
        return outputs.numpy()

    def fit(self, x: np.ndarray, y: np.ndarray, batch_size: int = 128, nb_epochs: int = 20, **kwargs) -> None:
        """Encoders are trained without labels: use :func:`art_ssl.ssl.pretrain`, or a classifier trainer."""
        raise NotImplementedError(
            "PyTorchEncoder has no supervised fit: pre-train with art_ssl.ssl.pretrain(encoder.model, x), or wrap it "
            "with art_ssl.estimators.encoder_classifier() and train that."
        )

    def with_model(self, model: nn.Module) -> PyTorchEncoder:
        """A new estimator with this one's settings (input shape, loss, clip values, preprocessing, device) around
        another model, e.g. a backdoored or distilled copy of the encoder."""
        params = self.get_params()
        params["model"] = model
        return type(self)(**params)

    # ------------------------------------------------------------------ helpers
    def _to_tensor(self, x: np.ndarray) -> torch.Tensor:
        x = check_images(x, "x", self._input_shape, self.clip_values)
        return torch.from_numpy(x).to(self._device)

    def _prepare(self, x, y) -> tuple[torch.Tensor, torch.Tensor]:
        x_t = x.to(self._device) if isinstance(x, torch.Tensor) else self._to_tensor(x)
        if isinstance(y, np.ndarray):
            if not np.issubdtype(y.dtype, np.floating) or not np.isfinite(y).all():
                raise ValueError("`y` must be finite float target embeddings.")
            y = torch.from_numpy(y.astype(np.float32, copy=False))
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"`y` must be target embeddings (numpy or torch), got {type(y).__name__}.")
        if y.ndim != 2 or y.shape[0] != x_t.shape[0] or y.shape[1] != self.embedding_dim:
            raise ValueError(
                f"`y` must be target embeddings of shape ({x_t.shape[0]}, {self.embedding_dim}), got {tuple(y.shape)}."
            )
        return x_t, y.to(self._device)


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
