"""
PAP / L4A: Pre-trained Adversarial Perturbations, "lift the neuron activations of low-level layers".

Ban & Dong, "Pre-trained Adversarial Perturbations", NeurIPS 2022 (arXiv 2210.03372); official code
github.com/banyuanhao/PAP. A universal ``delta`` (init U(-eps, eps)) ascends ``mean(f_l(x + delta)^2)`` at a low layer
``l`` with sign steps and is clipped to ``[-eps, eps]`` (L4A_base). ``fuse`` adds a second layer's energy with weight
``fuse_weight``; ``ugs`` (uniform Gaussian sampling) also feeds Gaussian-noise images whose per-channel mean and std
are drawn from ``ugs_mean`` / ``ugs_std`` and redrawn every ``ugs_resample`` steps, with loss
``E(noise + delta) + ugs_weight * E(x + delta)``.
"""

from __future__ import annotations

import numpy as np
import torch

from art_ssl.attacks.evasion.universal_base import UniversalEncoderAttack
from art_ssl.core.losses import activation_energy
from art_ssl.core.universal import Objective
from art_ssl.estimators.encoder import PyTorchEncoder

VARIANTS = ("base", "fuse", "ugs")


class PAP(UniversalEncoderAttack):
    """
    PAP (L4A) universal perturbation on a pre-trained encoder. Defaults are the official code's: eps 0.05, step
    2e-4, batch 16, one pass over the data; UGS: 8 noise images a step, mean ~ U[0.4, 0.6], std ~ U[0.05, 0.1]
    redrawn every 20 steps, real-data weight 0.01. The official code fixes no layers or weight for ``fuse``; ours
    default to ``layer`` + ``fuse_layer="layer1"`` with weight 1.
    """

    attack_params = UniversalEncoderAttack.attack_params + [
        "variant",
        "layer",
        "fuse_layer",
        "fuse_weight",
        "ugs_batch",
        "ugs_weight",
        "ugs_resample",
        "ugs_mean",
        "ugs_std",
    ]

    def __init__(
        self,
        estimator: PyTorchEncoder,
        variant: str = "base",
        layer: str = "stem",
        eps: float = 0.05,
        step_size: float = 2e-4,
        batch_size: int = 16,
        nb_epochs: int = 1,
        max_iter: int | None = None,
        fuse_layer: str = "layer1",
        fuse_weight: float = 1.0,
        ugs_batch: int = 8,
        ugs_weight: float = 0.01,
        ugs_resample: int = 20,
        ugs_mean: tuple[float, float] = (0.4, 0.6),
        ugs_std: tuple[float, float] = (0.05, 0.1),
        norm: float = np.inf,
        clip: bool = True,
        nb_clusters: int = 10,
        seed: int = 0,
        verbose: bool = True,
    ) -> None:
        """
        :param estimator: The public encoder.
        :param variant: ``"base"`` (L4A_base), ``"fuse"`` (two layers) or ``"ugs"`` (with Gaussian-noise images).
        :param layer: Module name of the low layer whose activation energy is lifted (the stem by default).
        :param fuse_layer: Second layer of the ``fuse`` variant.
        :param fuse_weight: Weight of ``fuse_layer``'s energy.
        :param ugs_batch: Gaussian-noise images per step (``ugs``).
        :param ugs_weight: Weight of the real images' energy (``ugs``; the noise images have weight 1).
        :param ugs_resample: Steps between redraws of the noise images' per-channel mean and std.
        :param ugs_mean: Range of the per-channel mean of the noise images.
        :param ugs_std: Range of the per-channel standard deviation of the noise images.

        The other parameters are those of :class:`UniversalEncoderAttack`.
        """
        super().__init__(
            estimator, eps, step_size, batch_size, nb_epochs, max_iter, norm, clip, nb_clusters, seed, verbose
        )
        self.variant = variant
        self.layer = layer
        self.fuse_layer = fuse_layer
        self.fuse_weight = fuse_weight
        self.ugs_batch = ugs_batch
        self.ugs_weight = ugs_weight
        self.ugs_resample = ugs_resample
        self.ugs_mean = ugs_mean
        self.ugs_std = ugs_std
        self._check_params()

    def _objective(self, generator: torch.Generator) -> Objective:
        layers = [self.layer, self.fuse_layer] if self.variant == "fuse" else [self.layer]
        channels = self.estimator.input_shape[0]
        state = {"step": 0, "mean": None, "std": None}

        def energy(x_adv: torch.Tensor) -> torch.Tensor:
            acts = self._features(x_adv, layers)
            value = activation_energy(acts[self.layer])
            if self.variant == "fuse":
                value = value + self.fuse_weight * activation_energy(acts[self.fuse_layer])
            return value

        def objective(x, x_adv, apply):
            if self.variant != "ugs":
                return energy(x_adv)
            if state["step"] % self.ugs_resample == 0:
                state["mean"] = _uniform(self.ugs_mean, (1, channels, 1, 1), generator)
                state["std"] = _uniform(self.ugs_std, (1, channels, 1, 1), generator)
            state["step"] += 1
            shape = (self.ugs_batch, *x.shape[1:])
            noise = state["mean"] + state["std"] * torch.randn(shape, generator=generator)
            noise_adv = apply(noise.to(x.device))
            return energy(noise_adv) + self.ugs_weight * energy(x_adv)

        return objective

    def _check_params(self) -> None:
        super()._check_params()
        if self.variant not in VARIANTS:
            raise ValueError(f"`variant` must be one of {VARIANTS}, got {self.variant!r}.")
        self._check_layer("layer", self.layer)
        if self.variant == "fuse":
            self._check_layer("fuse_layer", self.fuse_layer)
            if self.fuse_layer == self.layer:
                raise ValueError("`fuse_layer` must differ from `layer`.")
        if self.fuse_weight < 0 or self.ugs_weight < 0:
            raise ValueError("`fuse_weight` and `ugs_weight` must be >= 0.")
        for name in ("ugs_batch", "ugs_resample"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
        for name in ("ugs_mean", "ugs_std"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"`{name}` must be a range (low, high) with 0 <= low <= high, got {(low, high)}.")


def _uniform(bounds: tuple[float, float], shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(shape, generator=generator)
