"""
SSP (universal form): self-supervised perturbation that maximises the distortion of an intermediate feature map.

Naseer et al., "A Self-supervised Approach for Adversarial Robustness", CVPR 2020 (official code: ``ssp.py`` in
github.com/Muzammal-Naseer/NRP): maximise ``MSE(f_l(x + delta), f_l(x))`` with sign steps and L-inf projection.
The paper crafts one perturbation per image; the universal form used as a baseline by PAP (Ban & Dong, NeurIPS
2022) learns one ``delta`` for all images with PAP's schedule (step 2e-4, batch 16, eps 0.05).

PAP's SSP baseline (``utils/ssp.py``) squares the feature maps before the MSE, ``MSE(f_l(x + delta)^2, f_l(x)^2)``;
Naseer's paper and code do not. The default follows Naseer (the method's own definition); ``squared=True`` gives
PAP's variant, for comparing with PAP's table.
"""

from __future__ import annotations

import numpy as np
import torch

from art_ssl.attacks.evasion.universal_base import UniversalEncoderAttack
from art_ssl.core.losses import feature_mse
from art_ssl.core.universal import Objective
from art_ssl.estimators.encoder import PyTorchEncoder


class SSP(UniversalEncoderAttack):
    """Universal SSP on a pre-trained encoder: feature distortion at ``layer`` (a mid layer by default)."""

    attack_params = UniversalEncoderAttack.attack_params + ["layer", "squared"]

    def __init__(
        self,
        estimator: PyTorchEncoder,
        layer: str = "layer2",
        eps: float = 0.05,
        step_size: float = 2e-4,
        batch_size: int = 16,
        nb_epochs: int = 1,
        max_iter: int | None = None,
        norm: float = np.inf,
        clip: bool = True,
        nb_clusters: int = 10,
        seed: int = 0,
        verbose: bool = True,
        squared: bool = False,
    ) -> None:
        """
        :param estimator: The public encoder.
        :param layer: Module name of the feature map to distort.
        :param squared: Compare squared feature maps (PAP's SSP baseline) instead of the maps (Naseer et al.).

        The other parameters are those of :class:`UniversalEncoderAttack`.
        """
        super().__init__(
            estimator, eps, step_size, batch_size, nb_epochs, max_iter, norm, clip, nb_clusters, seed, verbose
        )
        self.layer = layer
        self.squared = squared
        self._check_params()

    def _objective(self, generator: torch.Generator) -> Objective:
        def objective(x, x_adv, apply):
            with torch.no_grad():
                clean = self._features(x, [self.layer])[self.layer]
            adv = self._features(x_adv, [self.layer])[self.layer]
            if self.squared:
                return feature_mse(adv.square(), clean.square())
            return feature_mse(adv, clean)

        return objective

    def _check_params(self) -> None:
        super()._check_params()
        self._check_layer("layer", self.layer)
        if not isinstance(self.squared, bool):
            raise ValueError(f"`squared` must be a bool, got {self.squared!r}.")
