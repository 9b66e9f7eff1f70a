"""
UAPEPGD: universal adversarial perturbation via enhanced projected gradient descent, on a (surrogate) classifier.

Deng & Karam, "Universal Adversarial Attack via Enhanced Projected Gradient Descent", ICIP 2020. No official code
is public; we follow the implementation PAP (Ban & Dong, NeurIPS 2022, github.com/banyuanhao/PAP,
``utils/uapepgd.py``) benchmarks against. Only images whose prediction the current universal ``delta`` has not yet
changed are attacked; for each, an inner perturbation ``delta0 ~ U(-eps, eps)`` takes up to ``inner_steps`` sign
steps along a momentum ``v <- momentum * v + weight_gain * (x + delta + delta0) + grad`` of the cross-entropy of the
L2-normalised logits, stopping once the image is fooled (as the PAP code: the prediction is read before a step
and tested after it, so an image always takes one step, and one more past the step that fooled it;
``step_before_check=False`` tests before stepping instead); then ``delta <- clip(delta + delta0, -eps, eps)``. The step
is ``step_size`` for the first ``step_decay_after`` images and ``step_size_late`` after.

Batched here: a batch's still-unfooled images run the inner steps together, and ``delta`` moves by the mean of their
``delta0``. The labels are the classifier's own predictions on clean images unless ``y`` is given.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from art.attacks.attack import EvasionAttack
from art.estimators.classification import PyTorchClassifier

from art_ssl.attacks.evasion.universal_base import UniversalPerturbationMixin
from art_ssl.core.checks import check_images, check_labels, check_positive_int
from art_ssl.core.driver import Step, run_epochs
from art_ssl.core.forward import pixel_forward
from art_ssl.core.modes import evaluating
from art_ssl.core.perturbation import apply_perturbation, project_linf, uniform_noise
from art_ssl.core.seeding import scoped_seed


class UAPEPGD(UniversalPerturbationMixin, EvasionAttack):
    """UAPEPGD universal perturbation against an ART ``PyTorchClassifier`` (e.g. a surrogate linear probe)."""

    attack_params = EvasionAttack.attack_params + [
        "eps",
        "norm",
        "step_size",
        "step_size_late",
        "step_decay_after",
        "momentum",
        "weight_gain",
        "inner_steps",
        "batch_size",
        "nb_epochs",
        "max_iter",
        "clip",
        "seed",
        "verbose",
        "step_before_check",
    ]
    _estimator_requirements = (PyTorchClassifier,)

    def __init__(
        self,
        estimator: PyTorchClassifier,
        eps: float = 0.05,
        step_size: float = 0.002,
        step_size_late: float = 0.0002,
        step_decay_after: int = 10_000,
        momentum: float = 0.5,
        weight_gain: float = 1e-5,
        inner_steps: int = 10,
        batch_size: int = 32,
        nb_epochs: int = 1,
        max_iter: int | None = None,
        norm: float = np.inf,
        clip: bool = True,
        seed: int = 0,
        verbose: bool = True,
        step_before_check: bool = True,
    ) -> None:
        """
        :param estimator: The classifier (a surrogate head on the public encoder).
        :param eps: L-inf budget (PAP's 0.05 by default).
        :param step_size: Inner sign-step size for the first ``step_decay_after`` images.
        :param step_size_late: Inner step size after that.
        :param step_decay_after: Images processed before the step size drops.
        :param momentum: Momentum factor (beta).
        :param weight_gain: Weight of the current adversarial image in the momentum (gamma).
        :param inner_steps: Maximum inner steps per image.
        :param batch_size: Images attacked together.
        :param nb_epochs: Passes over ``x``.
        :param max_iter: Cap on the number of batches (``None``: no cap).
        :param norm: Only ``np.inf``.
        :param clip: Clip perturbed images to the classifier's ``clip_values``.
        :param seed: Seed of the shuffling and the inner initialisations.
        :param verbose: Show a progress bar.
        :param step_before_check: The reference order (default): every inner iteration steps, then stops the images
                                  its pre-step prediction showed fooled. ``False``: stop before stepping (one step
                                  fewer per image; art_ssl's order before issue 16).
        """
        super().__init__(estimator=estimator)
        self.eps = eps
        self.step_size = step_size
        self.step_size_late = step_size_late
        self.step_decay_after = step_decay_after
        self.momentum = momentum
        self.weight_gain = weight_gain
        self.inner_steps = inner_steps
        self.batch_size = batch_size
        self.nb_epochs = nb_epochs
        self.max_iter = max_iter
        self.norm = norm
        self.clip = clip
        self.seed = seed
        self.verbose = verbose
        self.step_before_check = step_before_check
        self.noise: np.ndarray | None = None
        self.mask: np.ndarray | None = None
        self.steps = 0
        self.seconds = 0.0
        self._check_params()

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
        """
        Learn the universal perturbation on ``x`` and return ``x`` perturbed with it.

        :param x: Images (N, C, H, W) within the classifier's ``clip_values``.
        :param y: Optional labels (N,) or (N, C); default: the classifier's predictions on ``x``.
        :param stop: Optional ``f(delta) -> bool`` checked every ``check_every`` batches; ``True`` ends the attack.
        """
        x = check_images(x, "x", self.estimator.input_shape, self.estimator.clip_values)
        clean_pred = self._predict_labels(x)
        labels = clean_pred if y is None else check_labels(y, len(x), "y", self.estimator.nb_classes)
        device = self.estimator.device
        x_all, y_all = torch.from_numpy(x), torch.from_numpy(labels)
        stop, check_every = kwargs.get("stop"), kwargs.get("check_every", 50)
        with scoped_seed(self.seed) as generator, evaluating(self.estimator.model):
            delta, seen = uniform_noise((1, *x.shape[1:]), self.eps, generator, device), 0

            def step(idx: torch.Tensor, _: Step) -> None:
                nonlocal delta, seen
                xb, yb = x_all[idx].to(device), y_all[idx].to(device)
                alpha = self.step_size if seen < self.step_decay_after else self.step_size_late
                seen += len(idx)
                x_base = apply_perturbation(xb, delta, self._clip_values)
                with torch.no_grad():
                    active = self._logits(x_base).argmax(1) == yb
                if active.any():
                    delta0 = self._inner_attack(x_base[active], yb[active], alpha, generator)
                    delta = project_linf(delta + delta0.mean(0, keepdim=True), self.eps)

            loop = run_epochs(
                n=len(x),
                batch_size=self.batch_size,
                nb_epochs=self.nb_epochs,
                generator=generator,
                step=step,
                max_steps=self.max_iter,
                stop=None if stop is None else lambda: bool(stop(delta.detach())),
                check_every=check_every,
                desc="UAPEPGD",
                progress="run",
                verbose=self.verbose,
            )
        self.steps, self.seconds = loop.steps, loop.seconds
        self.noise = delta.cpu().numpy()
        self._defer_fooling_rate(x, clean_pred)
        return self.perturb(x)

    def _compute_fooling_rate(self, x: np.ndarray, clean_pred: np.ndarray) -> float:
        return float(np.mean(self._predict_labels(self.perturb(x)) != clean_pred))

    def _predict_labels(self, x: np.ndarray) -> np.ndarray:
        """The classifier's labels of ``x``. ART's ``predict`` iterates a ``DataLoader``, which draws its base seed from
        torch's global generator: the scope keeps the caller's generator as it was."""
        with scoped_seed(self.seed):
            return self.estimator.predict(x, batch_size=256).argmax(1)

    def _inner_attack(
        self, x_base: torch.Tensor, labels: torch.Tensor, alpha: float, generator: torch.Generator
    ) -> torch.Tensor:
        """Momentum sign steps on a per-image ``delta0`` until each image is fooled or ``inner_steps`` run out."""
        delta0 = uniform_noise(tuple(x_base.shape), self.eps, generator, x_base.device).requires_grad_(True)
        velocity = torch.zeros_like(x_base)
        active = torch.ones(len(x_base), dtype=torch.bool, device=x_base.device)  # images still stepping
        for _ in range(self.inner_steps):
            x_in = x_base + delta0
            logits = self._logits(x_in)
            unfooled = (logits.argmax(1) == labels).detach()
            if not self.step_before_check:
                active &= unfooled
            if not active.any():
                break
            loss = F.cross_entropy(F.normalize(logits, dim=1), labels, reduction="sum")
            (grad,) = torch.autograd.grad(loss, delta0)
            with torch.no_grad():
                velocity = self.momentum * velocity + self.weight_gain * x_in + grad
                delta0 += alpha * velocity.sign() * active.view(-1, 1, 1, 1)
            if self.step_before_check:
                active &= unfooled  # the reference tests the pre-step prediction after the step
        return delta0.detach()

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_forward(self.estimator, x)

    def _check_params(self) -> None:
        super()._check_params()
        self._check_common_params()
        if self.step_size_late <= 0 or self.momentum < 0 or self.weight_gain < 0:
            raise ValueError("`step_size_late` must be > 0, `momentum` and `weight_gain` >= 0.")
        check_positive_int("inner_steps", self.inner_steps)
        if not isinstance(self.step_before_check, bool):
            raise ValueError(f"`step_before_check` must be a bool, got {self.step_before_check!r}.")
        if isinstance(self.step_decay_after, bool) or self.step_decay_after < 0:
            raise ValueError(f"`step_decay_after` must be a non-negative int, got {self.step_decay_after!r}.")
