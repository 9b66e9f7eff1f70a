"""Output-size probing: the one forward pass art_ssl uses to learn an encoder's embedding size."""

from __future__ import annotations

import torch
from torch import nn

from art_ssl.core.modes import evaluating


def output_dim(
    model: nn.Module,
    *,
    input_shape: tuple[int, ...],
    device: torch.device | str | None = None,
    flatten: bool = False,
    name: str = "model",
) -> int:
    """
    Size D of ``model``'s output for inputs of ``input_shape``: its ``feature_dim`` attribute when it has one, else
    one forward pass of two zero images in eval mode without gradients (no BatchNorm statistic moves, no random
    draw); the model's train/eval modes are restored.

    :param model: Maps (N, C, H, W) to (N, D) (or to (N, ...) with ``flatten``).
    :param input_shape: (C, H, W).
    :param device: Where to run the probe (default: where the model's first parameter or buffer is, else CPU).
    :param flatten: Count every output value per sample (``(N, ...)`` outputs); otherwise the output must be 2-d.
    :param name: How the error message calls ``model`` (the caller's parameter name).
    :raises ValueError: the output is not (N, D) and ``flatten`` is off.
    """
    feature_dim = getattr(model, "feature_dim", None)
    if feature_dim is not None:
        return int(feature_dim)
    if device is None:
        tensors: list[torch.Tensor] = list(model.parameters()) or list(model.buffers())
        device = tensors[0].device if tensors else torch.device("cpu")
    with torch.no_grad(), evaluating(model):
        out = model(torch.zeros((2, *input_shape), device=device))
    if flatten:
        return int(out.flatten(1).shape[1])
    if out.ndim != 2:
        raise ValueError(f"`{name}` must return (N, D) embeddings, got shape {tuple(out.shape)}.")
    return int(out.shape[1])
