"""Perturbation arithmetic in pixel space: L-inf projection, application with optional clipping, patch pasting,
seeded noise."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T", np.ndarray, torch.Tensor)


def project_linf(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Project onto the L-inf ball of radius ``eps``."""
    return delta.clamp(-eps, eps)


def apply_perturbation(
    x: torch.Tensor, delta: torch.Tensor, clip_values: tuple[float, float] | None = None
) -> torch.Tensor:
    """``x + delta`` (broadcast), clipped to ``clip_values`` unless that is ``None`` (the papers' unclipped mode)."""
    x_adv = x + delta
    return x_adv if clip_values is None else x_adv.clamp(float(clip_values[0]), float(clip_values[1]))


def uniform_noise(
    shape: tuple[int, ...], eps: float, generator: torch.Generator, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """U(-eps, eps) noise drawn from ``generator`` (on the CPU, so results do not depend on the device)."""
    return ((torch.rand(shape, generator=generator) * 2 - 1) * eps).to(device)


def paste(x: T, patch: T, mask: T) -> T:
    """``x * (1 - mask) + patch * mask``: the pixels of ``x`` where ``mask`` is 1 replaced by ``patch`` (blended where
    it lies between 0 and 1); numpy arrays or torch tensors (differentiable), all broadcast. Every patch, mask and
    trigger of art_ssl is pasted with this one expression."""
    return x * (1 - mask) + patch * mask


def paste_patch(
    x: torch.Tensor, patch: torch.Tensor, mask: torch.Tensor, clip_values: tuple[float, float] | None = None
) -> torch.Tensor:
    """Replace the pixels of ``x`` where ``mask`` is 1 by ``patch`` (both broadcast), clipped like
    :func:`apply_perturbation`."""
    x_adv = paste(x, patch, mask)
    return x_adv if clip_values is None else x_adv.clamp(float(clip_values[0]), float(clip_values[1]))


def corner_mask(shape: tuple[int, int], side: int, margin: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(1, 1, H, W) mask of a ``side`` x ``side`` square ``margin`` pixels from the bottom-right corner."""
    height, width = shape
    if side < 1 or margin < 0 or side + margin > min(height, width):
        raise ValueError(f"A {side}x{side} square with margin {margin} does not fit in {height}x{width}.")
    mask = torch.zeros((1, 1, height, width), device=device)
    mask[..., height - margin - side : height - margin, width - margin - side : width - margin] = 1.0
    return mask
