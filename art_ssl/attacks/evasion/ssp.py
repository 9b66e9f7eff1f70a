"""
SSP (universal form): self-supervised perturbation that maximises the distortion of an intermediate feature map.

Naseer et al., "A Self-supervised Approach for Adversarial Robustness", CVPR 2020 (official code: ``ssp.py`` in
github.com/Muzammal-Naseer/NRP): maximise ``MSE(f_l(x + delta), f_l(x))`` with sign steps and L-inf projection.
The paper crafts one perturbation per image; the universal form used as a baseline by PAP (Ban & Dong, NeurIPS
2022) learns one ``delta`` for all images with PAP's schedule (step 2e-4, batch 16, eps 0.05).
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

    attack_params = UniversalEncoderAttack.attack_params + ["layer"]

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
    ) -> None:
        """
        :param estimator: The public encoder.
        :param layer: Module name of the feature map to distort.

        The other parameters are those of :class:`UniversalEncoderAttack`.
        """
        super().__init__(estimator, eps, step_size, batch_size, nb_epochs, max_iter, norm, clip, nb_clusters, seed,
                         verbose)  # fmt: skip
        self.layer = layer
        self._check_params()

    def _objective(self, generator: torch.Generator) -> Objective:
        def objective(x, x_adv, apply):
            with torch.no_grad():
                clean = self._features(x, [self.layer])[self.layer]
            return feature_mse(self._features(x_adv, [self.layer])[self.layer], clean)

        return objective

    def _check_params(self) -> None:
        super()._check_params()
        self._check_layer("layer", self.layer)
