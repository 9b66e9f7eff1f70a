"""
The one pixel-space forward of art_ssl: images in the estimator's pixel range (``clip_values``, where ``eps`` is
measured) go through the estimator's own preprocessing (e.g. mean/std normalisation) exactly once, then through the
network. Attacks, trainers, the ZePAD detector, BadEncoder, distillation and the AutoAttack adapter all call these
two functions, so the preprocessing can neither be skipped nor applied twice by one of them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def preprocess(estimator: Any, x: torch.Tensor, *, differentiable: bool = True) -> torch.Tensor:
    """
    ``estimator``'s preprocessing (ART's ``preprocessing`` / ``preprocessing_defences``) applied to a batch of
    pixel-space images on the estimator's device.

    :param estimator: An ART PyTorch estimator (``PyTorchClassifier``, art_ssl's ``PyTorchEncoder``).
    :param x: Images (N, C, H, W), a torch tensor.
    :param differentiable: Keep the autograd graph from ``x`` (attacks, training); ``False`` for inference only.
    :return: The model's input.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`x` must be a torch.Tensor, got {type(x).__name__}.")
    # ART keeps this method private, but it is the estimator's own definition of its preprocessing; calling it here
    # only is what keeps every forward pass of art_ssl equal to the estimator's ``predict``.
    return estimator._apply_preprocessing(x, y=None, fit=False, no_grad=not differentiable)[0]


def pixel_forward(
    estimator: Any, x: torch.Tensor, *, model: nn.Module | None = None, differentiable: bool = True
) -> torch.Tensor:
    """
    ``model(preprocess(estimator, x))``: the outputs (logits, embeddings) of pixel-space images.

    :param estimator: The ART estimator whose preprocessing applies.
    :param x: Images (N, C, H, W), a torch tensor.
    :param model: The network to run (default ``estimator.model``; e.g. a copy being trained, or one branch).
    :param differentiable: See :func:`preprocess`.
    """
    net = estimator.model if model is None else model
    return net(preprocess(estimator, x, differentiable=differentiable))


class PreprocessedModel(nn.Module):
    """``classifier.model`` behind the classifier's own (torch) preprocessing: a module from pixel-space inputs to
    logits, for libraries that take a bare model (torchattacks, AutoAttack). Also importable from
    ``art_ssl.evaluation.autoattack``.

    :param classifier: An ART PyTorch classifier.
    """

    def __init__(self, classifier: Any) -> None:
        super().__init__()
        self.classifier = classifier
        self.model = classifier.model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_forward(self.classifier, x, model=self.model)
