"""
AdvEncoder: a generator learns one downstream-agnostic universal perturbation (or patch) against a pre-trained
encoder.

Zhou et al., "AdvEncoder: Towards Downstream-agnostic Adversarial Examples via Pre-trained Encoders", ICCV 2023;
official code github.com/CGCL-codes/AdvEncoder. A DCGAN generator G with a fixed noise input outputs the
perturbation ``delta = clip(G(z), -eps, eps)``; G is trained with Adam to minimise

    alpha * (-InfoNCE(f(x), f(x + delta))) + MSE(x + delta, x) - MSE(H(x), H(x + delta))

where InfoNCE has temperature 0.1 and in-batch negatives (the clean embedding ``i``'s positive is the perturbed
embedding ``i``) and H keeps the frequencies outside a centred disc of radius 8 (the high-frequency term). The patch
variant pastes G's output on a square of area fraction 0.03 near the bottom-right corner.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from art_ssl.attacks.evasion.universal_base import UniversalEncoderAttack
from art_ssl.core.frequency import high_pass
from art_ssl.core.losses import info_nce
from art_ssl.core.perturbation import corner_mask
from art_ssl.core.universal import GeneratorPerturbation, Objective, PerturbationSource
from art_ssl.estimators.encoder import PyTorchEncoder

VARIANTS = ("perturbation", "patch")


class UniversalGenerator(nn.Module):
    """
    AdvEncoder's generator: a DCGAN generator (Radford et al., ICLR 2016) maps ``nz_batch`` fixed noise vectors to
    as many 64x64 tanh images (transposed convolutions ``8, 4, 2, 1 x ngf`` channels with BatchNorm and ReLU), which
    a 3x3 convolution over the batch axis mixes into one perturbation (resized bilinearly to ``size`` if not 64).

    :param channels: Image channels.
    :param size: Output (H, W).
    :param nz: Noise size.
    :param ngf: Width unit.
    :param nz_batch: Number of noise vectors mixed into the one perturbation.
    """

    def __init__(self, channels: int, size: tuple[int, int], nz: int = 100, ngf: int = 128, nz_batch: int = 256):
        super().__init__()
        widths = [8 * ngf, 4 * ngf, 2 * ngf, ngf]
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, widths[0], 4, 1, 0), nn.BatchNorm2d(widths[0]), nn.ReLU()]
        for w_in, w_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1), nn.BatchNorm2d(w_out), nn.ReLU()]
        layers += [nn.ConvTranspose2d(ngf, channels, 4, 2, 1), nn.Tanh()]
        self.trunk = nn.Sequential(*layers)
        self.mix = nn.Conv2d(nz_batch, 1, 3, 1, 1)
        self.size = tuple(size)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:  # every layer here has one (PyTorch's default)
                    nn.init.zeros_(module.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        images = self.trunk(z)  # (nz_batch, C, 64, 64)
        out = self.mix(images.transpose(0, 1)).transpose(0, 1)  # the batch axis acts as channels -> (1, C, 64, 64)
        if out.shape[-2:] != self.size:
            out = F.interpolate(out, size=self.size, mode="bilinear", align_corners=False)
        return out


class AdvEncoder(UniversalEncoderAttack):
    """
    AdvEncoder universal perturbation (``variant="perturbation"``) or patch (``"patch"``). Defaults are the
    official code's: eps 10/255, alpha 5, temperature 0.1, radius 8, Adam 2e-4 with betas (0.5, 0.999), batch 256,
    20 epochs, generator ``nz=100, ngf=128, nz_batch=256``; patch area fraction 0.03, 14/64 of the side from the
    bottom-right corner. Patch pixels are clamped to the estimator's clip range (the official code applies a
    normalised-space range in pixel space). On a CPU, a smaller generator (e.g. ``ngf=16, nz_batch=16``) is
    hundreds of times cheaper.
    """

    attack_params = UniversalEncoderAttack.attack_params + [
        "variant",
        "alpha",
        "temperature",
        "radius",
        "betas",
        "nz",
        "ngf",
        "nz_batch",
        "patch_fraction",
    ]
    _update = "adam"

    def __init__(
        self,
        estimator: PyTorchEncoder,
        variant: str = "perturbation",
        eps: float = 10 / 255,
        alpha: float = 5.0,
        temperature: float = 0.1,
        radius: float = 8.0,
        learning_rate: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        batch_size: int = 256,
        nb_epochs: int = 20,
        max_iter: int | None = None,
        nz: int = 100,
        ngf: int = 128,
        nz_batch: int = 256,
        patch_fraction: float = 0.03,
        norm: float = np.inf,
        clip: bool = True,
        nb_clusters: int = 10,
        seed: int = 0,
        verbose: bool = True,
    ) -> None:
        """
        :param estimator: The public encoder.
        :param variant: ``"perturbation"`` (additive, L-inf ``eps``) or ``"patch"``.
        :param alpha: Weight of the InfoNCE term.
        :param temperature: InfoNCE temperature.
        :param radius: Radius of the low-frequency disc removed by the high-pass filter.
        :param learning_rate: Adam learning rate of the generator.
        :param betas: Adam betas.
        :param nz: Noise size.
        :param ngf: Generator width unit.
        :param nz_batch: Noise vectors mixed.
        :param patch_fraction: Patch area as a fraction of the image (``"patch"``).

        The other parameters are those of :class:`UniversalEncoderAttack`.
        """
        super().__init__(
            estimator, eps, learning_rate, batch_size, nb_epochs, max_iter, norm, clip, nb_clusters, seed, verbose
        )
        self.variant = variant
        self.alpha = alpha
        self.temperature = temperature
        self.radius = radius
        self.betas = betas
        self.nz = nz
        self.ngf = ngf
        self.nz_batch = nz_batch
        self.patch_fraction = patch_fraction
        self._check_params()

    @property
    def _adam_betas(self) -> tuple[float, float]:
        beta1, beta2 = self.betas  # two numbers: checked in _check_params
        return (beta1, beta2)

    def _make_source(self, shape: tuple[int, ...], generator: torch.Generator) -> PerturbationSource:
        channels, height, width = shape
        net = UniversalGenerator(channels, (height, width), self.nz, self.ngf, self.nz_batch)
        z = torch.randn((self.nz_batch, self.nz, 1, 1), generator=generator)
        if self.variant == "perturbation":
            return GeneratorPerturbation(net, z, self.eps)
        side = max(1, int(math.sqrt(self.patch_fraction * height * width)))
        margin = round(14 / 64 * min(height, width))
        mask = corner_mask((height, width), side, min(margin, min(height, width) - side))
        patch_range = self._clip_values or (0.0, 1.0)
        return GeneratorPerturbation(net, z, self.eps, mask=mask, patch_range=patch_range)

    def _objective(self, generator: torch.Generator) -> Objective:
        def objective(x, x_adv, apply):
            with torch.no_grad():
                clean = self._features(x)
            contrast = info_nce(clean, self._features(x_adv), self.temperature)
            fidelity = F.mse_loss(x_adv, x)
            high_freq = F.mse_loss(high_pass(x, self.radius), high_pass(x_adv, self.radius))
            return self.alpha * contrast - fidelity + high_freq  # the negated generator loss

        return objective

    def _check_params(self) -> None:
        super()._check_params()
        if self.variant not in VARIANTS:
            raise ValueError(f"`variant` must be one of {VARIANTS}, got {self.variant!r}.")
        if self.alpha < 0 or self.temperature <= 0 or self.radius < 0:
            raise ValueError("`alpha` and `radius` must be >= 0 and `temperature` > 0.")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"`betas` must be two numbers in [0, 1), got {self.betas!r}.")
        for name in ("nz", "ngf", "nz_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
        if not 0 < self.patch_fraction < 1:
            raise ValueError(f"`patch_fraction` must be in (0, 1), got {self.patch_fraction}.")
