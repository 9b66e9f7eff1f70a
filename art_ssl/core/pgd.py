"""
Projected gradient ascent in the L-inf ball, on any differentiable loss, entirely in torch on the inputs' device.

One routine serves every trainer's inner maximisation (PGD-AT, TRADES, MART, Gen-AF) and the trainers' robust
validation: they differ only in the loss they hand it and in the random start.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

RANDOM_STARTS = (None, "uniform", "normal")


def pgd_linf(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    random_start: str | None = "uniform",
    generator: torch.Generator | None = None,
    clip_values: tuple[float, float] | None = (0.0, 1.0),
    normal_std: float = 0.001,
    rows: tuple[int, int] | None = None,
) -> torch.Tensor:
    """
    ``steps`` sign-gradient ascent steps on ``loss_fn(x_adv)`` (a scalar; sum per-sample losses so that each
    sample's step is independent of the batch size), each followed by projection onto the ``eps`` L-inf ball around
    ``x`` and onto ``clip_values``. Gradients are taken with respect to the input only: model parameters
    accumulate nothing. Keyword-only after ``x``.

    :param loss_fn: Maps a batch of inputs to the scalar to maximise.
    :param x: Clean batch.
    :param eps: L-inf radius in pixel units.
    :param step_size: Size of each sign step.
    :param steps: Number of steps (0 returns the start point).
    :param random_start: ``"uniform"`` (U(-eps, eps), Madry et al.), ``"normal"`` (``normal_std`` * N(0, 1), as the
                         official TRADES and MART code) or ``None`` (start at ``x``, as Gen-AF's code).
    :param generator: CPU generator for the random start (drawn on the CPU, so results do not depend on the device).
    :param clip_values: Valid pixel range, or ``None`` for no clipping.
    :param normal_std: Standard deviation of the ``"normal"`` start.
    :param rows: ``(offset, n_global)`` in data-parallel training (:mod:`art_ssl.core.distributed`): the random start
                 is drawn for the whole global batch of ``n_global`` rows and rows ``offset : offset + len(x)`` are
                 used, so a rank's shard starts where a single process would have started it.
    :return: The adversarial batch, detached.
    """
    if random_start not in RANDOM_STARTS:
        raise ValueError(f"`random_start` must be one of {RANDOM_STARTS}, got {random_start!r}.")
    x = x.detach()
    shape = x.shape if rows is None else (rows[1], *x.shape[1:])
    if random_start == "uniform":
        noise = (torch.rand(shape, generator=generator) * 2 - 1) * eps
    elif random_start == "normal":
        noise = torch.randn(shape, generator=generator) * normal_std
    if random_start is not None and rows is not None:
        noise = noise[rows[0] : rows[0] + len(x)]
    x_adv = x if random_start is None else x + noise.to(device=x.device, dtype=x.dtype)
    x_adv = _clip(x_adv, clip_values)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(x_adv), x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = _clip(torch.min(torch.max(x_adv, x - eps), x + eps), clip_values)
    return x_adv.detach()


def _clip(x: torch.Tensor, clip_values: tuple[float, float] | None) -> torch.Tensor:
    return x if clip_values is None else x.clamp(float(clip_values[0]), float(clip_values[1]))
