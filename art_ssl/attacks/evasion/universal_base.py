"""
Base class of art_ssl's downstream-agnostic universal attacks: one perturbation learnt from a public encoder and
unlabelled images, then added to any image fed to any model fine-tuned from that encoder.
"""

from __future__ import annotations

import logging
from typing import Any, overload

import numpy as np
import torch
from art.attacks.attack import EvasionAttack

from art_ssl.core.amp import amp_dtype, autocast_forward, to_float
from art_ssl.core.batching import map_batches
from art_ssl.core.checks import check_bool, check_images, check_positive_int, check_seed
from art_ssl.core.forward import preprocess
from art_ssl.core.hooks import layer_outputs, resolve_layer
from art_ssl.core.kmeans import assign, spherical_kmeans
from art_ssl.core.modes import evaluating
from art_ssl.core.perturbation import paste
from art_ssl.core.seeding import scoped_seed
from art_ssl.core.universal import FreePerturbation, Objective, PerturbationSource, learn_universal
from art_ssl.estimators.encoder import PyTorchEncoder

logger = logging.getLogger(__name__)


class UniversalPerturbationMixin:
    """What every universal attack of art_ssl shares: the learnt ``noise`` (and ``mask`` for patches),
    :meth:`perturb` and the checks of the common parameters."""

    estimator: Any
    noise: np.ndarray | None
    mask: np.ndarray | None
    clip: bool
    # the common parameters, set by the attack's __init__ (checked by _check_common_params)
    eps: float
    norm: float | str
    step_size: float
    max_iter: int | None
    seed: int
    verbose: bool
    _fooling_rate: float | None = None
    _fooling_inputs: tuple | None = None

    @property
    def fooling_rate(self) -> float | None:
        """Fooling rate of the learnt perturbation on the images given to ``generate`` (``None`` before it).
        Computed on first access, not inside ``generate``: it costs extra passes over those images that the attack
        itself does not need."""
        if self._fooling_rate is None and self._fooling_inputs is not None:
            self._fooling_rate = self._compute_fooling_rate(*self._fooling_inputs)
            self._fooling_inputs = None
        return self._fooling_rate

    def _defer_fooling_rate(self, *inputs: Any) -> None:
        """Forget the previous fooling rate; compute the new one from ``inputs`` when asked."""
        self._fooling_rate, self._fooling_inputs = None, inputs

    def _compute_fooling_rate(self, *inputs: Any) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def perturb(self, x: np.ndarray) -> np.ndarray:
        """Apply the learnt perturbation to other images (e.g. a downstream test set)."""
        if self.noise is None:
            raise ValueError("No perturbation yet: call `generate` first.")
        x = check_images(x, "x", self.estimator.input_shape, self.estimator.clip_values)
        x_adv = x + self.noise if self.mask is None else paste(x, self.noise, self.mask)
        if self._clip_values is not None:
            x_adv = np.clip(x_adv, *self._clip_values)
        return x_adv.astype(np.float32)

    @property
    def _clip_values(self) -> tuple[float, float] | None:
        clip_values = self.estimator.clip_values
        if not self.clip or clip_values is None:
            return None
        return float(np.min(clip_values[0])), float(np.max(clip_values[1]))

    def _check_common_params(self) -> None:
        if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float)) or not 0 < self.eps <= 1:
            raise ValueError(f"`eps` must be a number in (0, 1] (pixel units), got {self.eps!r}.")
        if self.norm not in (np.inf, "inf"):
            raise ValueError(f"`norm` must be np.inf (the only norm of universal feature attacks), got {self.norm!r}.")
        if isinstance(self.step_size, bool) or not isinstance(self.step_size, (int, float)) or self.step_size <= 0:
            raise ValueError(f"`step_size` must be a positive number, got {self.step_size!r}.")
        for name in ("batch_size", "nb_epochs"):
            check_positive_int(name, getattr(self, name))
        if self.max_iter is not None:
            check_positive_int("max_iter", self.max_iter)
        check_bool("clip", self.clip)
        amp_dtype(self.estimator.device, getattr(self, "amp", False))
        check_seed(self.seed)
        check_bool("verbose", self.verbose)


class UniversalEncoderAttack(UniversalPerturbationMixin, EvasionAttack):
    """
    Learns one universal perturbation ``noise`` (1, C, H, W) on an encoder from unlabelled images.

    ``generate(x)`` learns it on ``x`` and returns ``x + noise``; ``perturb(x_other)`` applies the same noise to other
    images (the downstream test set). After ``generate``: ``noise``, ``fooling_rate`` (label-free: the fraction of
    ``x`` whose embedding moves to another of ``nb_clusters`` spherical k-means clusters of the clean embeddings),
    ``history`` (objective per epoch), ``steps`` and ``seconds``.

    Subclasses provide the objective (:meth:`_objective`) and, if not a free tensor with sign steps, the
    perturbation's parametrisation (:meth:`_make_source`, :attr:`_update`).
    """

    attack_params = EvasionAttack.attack_params + [
        "eps",
        "norm",
        "step_size",
        "batch_size",
        "nb_epochs",
        "max_iter",
        "clip",
        "nb_clusters",
        "seed",
        "verbose",
        "amp",
    ]
    _estimator_requirements = (PyTorchEncoder,)
    _update = "sign"  # "adam" for generator-parametrised perturbations

    @property
    def _adam_betas(self) -> tuple[float, float]:
        """Adam's betas for ``_update="adam"`` (AdvEncoder's come from its ``betas`` parameter)."""
        return (0.9, 0.999)

    def __init__(
        self,
        estimator: PyTorchEncoder,
        eps: float,
        step_size: float,
        batch_size: int,
        nb_epochs: int = 1,
        max_iter: int | None = None,
        norm: float = np.inf,
        clip: bool = True,
        nb_clusters: int = 10,
        seed: int = 0,
        verbose: bool = True,
        amp: bool | str = "auto",
    ) -> None:
        """
        :param estimator: The public encoder.
        :param eps: L-inf budget in pixel units ([0, 1] scale).
        :param step_size: Sign-step size (or the generator's learning rate).
        :param batch_size: Images per optimisation step.
        :param nb_epochs: Passes over the surrogate images.
        :param max_iter: Cap on the total number of steps (``None``: no cap).
        :param norm: Only ``np.inf``.
        :param clip: Clip ``x + noise`` to the estimator's ``clip_values`` (ART's convention); ``False`` leaves it
                     unclipped, as the papers' code does.
        :param nb_clusters: Clusters of the label-free fooling rate.
        :param seed: Seed of the initialisation, the shuffling and any sampling.
        :param verbose: Show a progress bar.
        :param amp: Mixed precision of the encoder's forward passes while learning the perturbation (``True``,
                    ``False`` or ``"auto"``: bf16 only where measured faster; see :mod:`art_ssl.core.amp`); the
                    objective, the perturbation and its updates stay float32. Subclasses take it through
                    ``set_params(amp=...)``.
        """
        super().__init__(estimator=estimator)
        self.eps = eps
        self.step_size = step_size
        self.batch_size = batch_size
        self.nb_epochs = nb_epochs
        self.max_iter = max_iter
        self.norm = norm
        self.clip = clip
        self.nb_clusters = nb_clusters
        self.seed = seed
        self.verbose = verbose
        self.amp = amp
        self.noise: np.ndarray | None = None
        self.mask: np.ndarray | None = None
        self.history: list[float] = []
        self.steps = 0
        self.seconds = 0.0
        UniversalEncoderAttack._check_params(self)

    # ------------------------------------------------------------------ public API
    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
        """
        Learn the universal perturbation on ``x`` and return ``x`` perturbed with it.

        :param x: Unlabelled surrogate images (N, C, H, W) within the estimator's ``clip_values``.
        :param y: Must be ``None``: the attack is downstream-agnostic and uses no labels.
        :return: Perturbed images, float32.
        """
        if y is not None:
            raise ValueError(f"`y` must be None: {type(self).__name__} learns from unlabelled images only.")
        x = check_images(x, "x", self.estimator.input_shape, self.estimator.clip_values)
        device = self.estimator.device
        dtype = amp_dtype(device, self.amp)
        with scoped_seed(self.seed) as generator:  # seeded init of any network; the caller's RNG left as it was
            source = self._make_source(tuple(x.shape[1:]), generator)
            with evaluating(self.estimator.model), autocast_forward([self.estimator.model], device, dtype):
                result = learn_universal(
                    x,
                    objective=self._objective(generator),
                    source=source,
                    update=self._update,
                    step_size=self.step_size,
                    nb_epochs=self.nb_epochs,
                    batch_size=self.batch_size,
                    generator=generator,
                    device=device,
                    clip_values=self._clip_values,
                    max_iter=self.max_iter,
                    adam_betas=self._adam_betas,
                    stop=kwargs.get("stop"),
                    check_every=kwargs.get("check_every", 50),
                    verbose=self.verbose,
                    desc=type(self).__name__,
                )
        self.noise = result.noise.numpy()
        self.mask = None if source.mask is None else source.mask.detach().cpu().numpy()
        self.history, self.steps, self.seconds = result.history, result.steps, result.seconds
        self._defer_fooling_rate(x)
        return self.perturb(x)

    def _compute_fooling_rate(self, x: np.ndarray) -> float:
        return self.embedding_fooling_rate(x, self.perturb(x))

    def embedding_fooling_rate(self, x: np.ndarray, x_adv: np.ndarray) -> float:
        """Fraction of images whose embedding changes spherical k-means cluster (clusters of the clean ones)."""
        clean = torch.from_numpy(self._embed(x))
        adv = torch.from_numpy(self._embed(x_adv))
        k = min(self.nb_clusters, len(clean))
        centroids = spherical_kmeans(clean, k, torch.Generator().manual_seed(self.seed))
        return float((assign(clean, centroids) != assign(adv, centroids)).float().mean())

    # ------------------------------------------------------------------ for subclasses
    def _make_source(self, shape: tuple[int, ...], generator: torch.Generator) -> PerturbationSource:
        return FreePerturbation(shape, self.eps, generator, init="uniform")

    def _objective(self, generator: torch.Generator) -> Objective:  # pragma: no cover - abstract
        raise NotImplementedError

    @overload
    def _features(self, x: torch.Tensor, layers: None = None) -> torch.Tensor: ...

    @overload
    def _features(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]: ...

    def _features(self, x: torch.Tensor, layers: list[str] | None = None) -> torch.Tensor | dict[str, torch.Tensor]:
        """Embeddings of ``x`` (``layers=None``) or the named layers' outputs, through the estimator's
        preprocessing, differentiable; the forward pass stops at the last requested layer."""
        x_pre = preprocess(self.estimator, x)
        if layers is None:
            return self.estimator.model(x_pre)
        return to_float(layer_outputs(self.estimator.model, x_pre, layers))  # float32 also under autocast

    def _embed(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        def embed(xb: np.ndarray) -> torch.Tensor:
            batch = torch.from_numpy(np.ascontiguousarray(xb, dtype=np.float32)).to(self.estimator.device)
            return self._features(batch).float().cpu()

        with evaluating(self.estimator.model):
            return map_batches(embed, x, batch_size=batch_size, no_grad=True).numpy()

    def _check_layer(self, name: str, value: Any) -> None:
        try:
            resolve_layer(self.estimator.model, value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"`{name}`: {err}") from None
        if not isinstance(value, str):
            raise ValueError(f"`{name}` must be a module name of the encoder, got {value!r}.")

    def _check_params(self) -> None:
        super()._check_params()
        self._check_common_params()
        check_positive_int("nb_clusters", self.nb_clusters)
        if self.nb_clusters < 2:
            raise ValueError(f"`nb_clusters` must be >= 2, got {self.nb_clusters}.")
