"""
Linear probe: the standard yardstick of a self-supervised encoder (Chen et al., SimCLR, sec. 4; Kolesnikov et al.,
2019): multinomial logistic regression on frozen features, trained full-batch with L-BFGS. The same fit on raw
pixels is the baseline an encoder must beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from art_ssl.core.checks import check_labels
from art_ssl.estimators.encoder import PyTorchEncoder
from art_ssl.metrics import accuracy


@dataclass
class ProbeResult:
    """Test accuracy, train accuracy and the fitted head (``nn.Linear`` acting on raw, unstandardised features)."""

    accuracy: float
    train_accuracy: float
    head: nn.Linear


def fit_linear_probe(
    features: np.ndarray,
    labels: np.ndarray,
    nb_classes: int | None = None,
    l2: float = 1e-4,
    max_iter: int = 500,
    seed: int = 0,
) -> nn.Linear:
    """
    Fit multinomial logistic regression on ``features`` (standardised per dimension inside, then folded back so
    the returned layer takes raw features).

    :param features: (N, D) float features.
    :param labels: (N,) int labels.
    :param nb_classes: Number of classes; default ``labels.max() + 1``.
    :param l2: Weight of ``0.5 * ||W||^2`` added to the mean cross-entropy.
    :param max_iter: L-BFGS iterations.
    :param seed: Seed of the (near-zero) initialisation.
    """
    features = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    labels = check_labels(labels, len(features), "labels", nb_classes)
    nb_classes = nb_classes or int(labels.max()) + 1
    if l2 < 0 or max_iter < 1:
        raise ValueError(f"`l2` must be >= 0 and `max_iter` >= 1, got {l2} and {max_iter}.")
    f = torch.from_numpy(features).double()
    y = torch.from_numpy(labels)
    mean, std = f.mean(0), f.std(0).clamp_min(1e-6)
    z = (f - mean) / std
    generator = torch.Generator().manual_seed(seed)
    weight = (torch.randn(nb_classes, z.shape[1], generator=generator, dtype=torch.float64) * 1e-3).requires_grad_()
    bias = torch.zeros(nb_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=max_iter, tolerance_grad=1e-7, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ weight.t() + bias, y) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    head = nn.Linear(z.shape[1], nb_classes)
    with torch.no_grad():
        w = weight / std  # fold the standardisation into the layer
        head.weight.copy_(w.float())
        head.bias.copy_((bias - w @ mean).float())
    return head


def probe_features(
    f_train: np.ndarray,
    y_train: np.ndarray,
    f_test: np.ndarray,
    y_test: np.ndarray,
    l2: float = 1e-4,
    max_iter: int = 500,
) -> ProbeResult:
    """Fit a linear probe on train features and score it on test features."""
    nb_classes = int(max(np.max(y_train), np.max(y_test))) + 1
    head = fit_linear_probe(f_train, y_train, nb_classes, l2, max_iter)
    with torch.no_grad():
        pred_train = head(torch.from_numpy(np.asarray(f_train, np.float32).reshape(len(f_train), -1))).argmax(1)
        pred_test = head(torch.from_numpy(np.asarray(f_test, np.float32).reshape(len(f_test), -1))).argmax(1)
    return ProbeResult(accuracy(pred_test.numpy(), y_test), accuracy(pred_train.numpy(), y_train), head)


def linear_probe(
    encoder: PyTorchEncoder,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    l2: float = 1e-4,
    max_iter: int = 500,
    batch_size: int = 256,
) -> ProbeResult:
    """
    Linear-probe accuracy of an encoder: embed both splits, fit on train, score on test.

    :param encoder: The encoder (frozen; eval mode).
    :param x_train: Training images.
    :param y_train: Labels of ``x_train``.
    :param x_test: Test images.
    :param y_test: Labels of ``x_test``.
    :param l2: L2 weight of the probe.
    :param max_iter: L-BFGS iterations.
    :param batch_size: Embedding batch size.
    """
    if not isinstance(encoder, PyTorchEncoder):
        raise TypeError(f"`encoder` must be a PyTorchEncoder, got {type(encoder).__name__}.")
    f_train = encoder.predict(x_train, batch_size=batch_size)
    f_test = encoder.predict(x_test, batch_size=batch_size)
    return probe_features(f_train, y_train, f_test, y_test, l2, max_iter)


def raw_pixel_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    l2: float = 1e-4,
    max_iter: int = 500,
) -> ProbeResult:
    """The baseline: the same linear probe on flattened raw pixels."""
    flat_train, flat_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    return probe_features(flat_train, y_train, flat_test, y_test, l2, max_iter)
