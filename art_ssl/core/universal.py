"""
The one optimisation loop for universal perturbations: every universal attack of art_ssl differs only in the
objective it hands this loop and in how the perturbation is parametrised (a free tensor updated with sign steps, or
a generator network trained with Adam).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from art_ssl.core.driver import Step, run_epochs
from art_ssl.core.perturbation import apply_perturbation, paste_patch, project_linf, uniform_noise

# objective(x, x_adv, apply) -> scalar to MAXIMISE; ``apply(images)`` puts the current perturbation on other images
# (e.g. the Gaussian-noise images of PAP's UGS variant).
Objective = Callable[[torch.Tensor, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]], torch.Tensor]


class PerturbationSource(nn.Module):
    """Produces the universal perturbation; ``perturb`` puts it on images (added, or pasted where ``mask`` is 1)."""

    if TYPE_CHECKING:  # a buffer registered in __init__ (no runtime annotation: TorchScript would read it)
        mask: torch.Tensor | None

    def __init__(self, mask: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    # not named ``apply``: that would override nn.Module.apply(fn), which nn.Module calls on every child module
    def perturb(
        self, x: torch.Tensor, perturbation: torch.Tensor, clip_values: tuple[float, float] | None
    ) -> torch.Tensor:
        if self.mask is None:
            return apply_perturbation(x, perturbation, clip_values)
        return paste_patch(x, perturbation, self.mask, clip_values)


class FreePerturbation(PerturbationSource):
    """A universal perturbation stored as one tensor of shape (1, C, H, W), initialised U(-eps, eps) or zero."""

    def __init__(self, shape: tuple[int, ...], eps: float, generator: torch.Generator, init: str = "uniform") -> None:
        super().__init__(mask=None)
        if init not in ("uniform", "zero"):
            raise ValueError(f"`init` must be 'uniform' or 'zero', got {init!r}.")
        start = uniform_noise((1, *shape), eps, generator) if init == "uniform" else torch.zeros((1, *shape))
        self.delta = nn.Parameter(start)
        self.eps = eps

    def forward(self) -> torch.Tensor:
        return self.delta

    @torch.no_grad()
    def sign_step(self, grad: torch.Tensor, step_size: float) -> None:
        """Ascend: ``delta <- clip(delta + step * sign(grad), -eps, eps)``."""
        self.delta.add_(step_size * grad.sign()).clamp_(-self.eps, self.eps)


class GeneratorPerturbation(PerturbationSource):
    """
    A universal perturbation produced by a generator network from a fixed noise input (AdvEncoder, Zhou et al.,
    ICCV 2023). Additive: the output clamped to ``[-eps, eps]``. Patch (``mask`` given): the output clamped to
    ``patch_range`` and pasted where the mask is 1.

    :param generator_net: Module mapping ``z`` to a (1, C, H, W) tensor.
    :param z: The fixed noise input.
    :param eps: L-inf bound of the additive perturbation.
    :param mask: Optional (1, 1, H, W) 0/1 mask for the patch variant.
    :param patch_range: Value range of patch pixels.
    """

    def __init__(
        self,
        generator_net: nn.Module,
        z: torch.Tensor,
        eps: float,
        mask: torch.Tensor | None = None,
        patch_range: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        super().__init__(mask=mask)
        self.net = generator_net
        self.register_buffer("z", z)
        self.eps, self.patch_range = eps, patch_range

    def forward(self) -> torch.Tensor:
        out = self.net(self.z)
        if self.mask is None:
            return project_linf(out, self.eps)
        return out.clamp(*self.patch_range)


@dataclass
class UniversalResult:
    """The learnt perturbation (1, C, H, W) on the CPU, the mean objective per epoch, the steps taken and time."""

    noise: torch.Tensor
    history: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    stopped_early: bool = False


def learn_universal(
    x: np.ndarray | torch.Tensor,
    *,
    objective: Objective,
    source: PerturbationSource,
    update: str,
    step_size: float,
    nb_epochs: int,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
    clip_values: tuple[float, float] | None = (0.0, 1.0),
    max_iter: int | None = None,
    adam_betas: tuple[float, float] = (0.5, 0.999),
    stop: Callable[[torch.Tensor], bool] | None = None,
    check_every: int = 50,
    verbose: bool = False,
    desc: str = "universal perturbation",
) -> UniversalResult:
    """
    Maximise ``objective(x_batch, source.perturb(x_batch), apply)`` over one universal perturbation made by
    ``source``; the loop is :func:`art_ssl.core.driver.run_epochs`. Keyword-only after ``x``.

    :param x: Unlabelled images (N, C, H, W) in pixel space; kept where they are, batches move to ``device``.
    :param objective: Returns the scalar to maximise for a batch.
    :param source: :class:`FreePerturbation` (``update="sign"``) or any module returning the perturbation
                   (``update="adam"``, e.g. :class:`GeneratorPerturbation`).
    :param update: ``"sign"`` (sign-gradient ascent then projection) or ``"adam"`` (Adam on the source's parameters).
    :param step_size: Sign step, or Adam's learning rate.
    :param nb_epochs: Passes over ``x`` (each in a fresh seeded order).
    :param batch_size: Images per step.
    :param generator: Seeded CPU generator for the shuffling.
    :param device: Where the model and the perturbation live.
    :param clip_values: Clip ``x + delta`` to this range; ``None`` leaves it unclipped (as the papers' code does).
    :param max_iter: Stop after this many steps in total (``None``: run all epochs).
    :param adam_betas: Adam's betas (AdvEncoder: 0.5, 0.999).
    :param stop: Called with the current perturbation every ``check_every`` steps; ``True`` ends the optimisation.
    :param check_every: Steps between ``stop`` checks.
    :param verbose: Show a progress bar.
    :param desc: Progress-bar label.
    """
    if update not in ("sign", "adam"):
        raise ValueError(f"`update` must be 'sign' or 'adam', got {update!r}.")
    if update == "sign" and not isinstance(source, FreePerturbation):
        raise TypeError("`update='sign'` needs a FreePerturbation source.")
    x_all = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
    n = len(x_all)
    if n == 0:
        raise ValueError("`x` is empty.")
    batch_size = min(batch_size, n)
    source.to(device)
    params = [p for p in source.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=step_size, betas=adam_betas) if update == "adam" else None

    def step(indices: torch.Tensor, _: Step) -> torch.Tensor:
        xb = x_all[indices].to(device, non_blocking=True)
        perturbation = source()

        def apply(images: torch.Tensor, p: torch.Tensor = perturbation) -> torch.Tensor:
            return source.perturb(images, p, clip_values)

        value = objective(xb, apply(xb), apply)
        grads = torch.autograd.grad(value, params)  # only the perturbation's parameters get gradients
        if optimizer is None:
            assert isinstance(source, FreePerturbation)  # checked above: update="sign" needs one
            source.sign_step(grads[0], step_size)
        else:
            for p, g in zip(params, grads, strict=True):
                p.grad = -g  # Adam minimises; we ascend the objective
            optimizer.step()
        return value.detach()

    def end_epoch(epoch: int, values: list[torch.Tensor], seconds: float) -> dict[str, float] | None:
        return {"objective": torch.stack(values).mean().item()} if values else None

    def should_stop() -> bool:
        assert stop is not None  # only handed to run_epochs with a ``stop``
        with torch.no_grad():
            return bool(stop(source().detach()))

    loop = run_epochs(
        n=n,
        batch_size=batch_size,
        nb_epochs=nb_epochs,
        generator=generator,
        step=step,
        end_epoch=end_epoch,
        max_steps=max_iter,
        stop=None if stop is None else should_stop,
        check_every=check_every,
        desc=desc,
        progress="run",
        verbose=verbose,
    )
    with torch.no_grad():
        noise = source().detach().cpu()
    return UniversalResult(
        noise=noise,
        history=[row["objective"] for row in loop.rows],
        steps=loop.steps,
        seconds=loop.seconds,
        stopped_early=loop.stopped_early,
    )
