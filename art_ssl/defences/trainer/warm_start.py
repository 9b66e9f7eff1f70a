"""
Head warm start (LP-FT: Kumar et al., "Fine-Tuning can Distort Pretrained Features and Underperform
Out-of-Distribution", ICLR 2022): fit the head on clean data with the encoder frozen before any adversarial
fine-tuning, so that the first adversarial steps see a head that already separates the classes.

Why art_ssl offers it: with a random head, the adversarial loss of the first epochs carries almost no label signal
(every class is equally wrong), and on our small encoders Gen-AF's stage 1, PGD-AT and MART lose the pre-trained
features before the head learns anything (BA 0.10 after one Gen-AF epoch; see the Gen-AF docstring). ZePAD's official
code trains its heads the same way (encoder frozen, clean data).

Also here: a budget warm-up (curriculum adversarial training, Cai et al., IJCAI 2018), for losses with no clean term
(PGD-AT, MART) whose model otherwise settles on the class prior before the encoder becomes robust. The training PGD's
``eps`` and step grow linearly, either step by step over a fraction of the run (``eps_warmup_fraction = f`` of a run
of ``T`` optimiser steps: step ``s``, counted from 0, uses ``min(1, (s + 1) / (f T + 1))`` of them) or per epoch
(``eps_warmup_epochs = k``: epoch ``e <= k`` uses ``e / (k + 1)``); set both and the fractions multiply. Validation
always uses the full budget. A fraction rather than a number of steps, so that a short run still ends at its budget.

Why (issue 16): on scikit-learn digits (1,257 images, batch 256: 5 steps an epoch), PGD-AT and MART at eps 8/255
collapse to a near-constant predictor (validation BA 0.10-0.33, training loss ln 10), and a per-epoch warm-up keeps
each budget for only 5 steps (``eps_warmup_epochs=2`` still collapsed at its third epoch). The collapse is not a bug
(``evaluations/results/digits_collapse_probes.md``): at eps 1/255 PGD-AT trains (BA 0.90, RA 0.69 after 3 epochs),
and neither frozen BatchNorm statistics, an inner PGD in train mode, encoder lr 1e-5 nor no weight decay prevents
it. The budget is out of proportion to the class signal in the zoo encoder's features (``--margin``: an 8/255 PGD
moves a digit's embedding by 15, while the nearest other class centroid is only 0.6 farther than the own one;
Fashion-MNIST: 16 vs 2.2). With the full budget from the first step, the adversarial loss is lowest for a
near-constant prediction, and the head and encoder go there; a linear ramp lets the model become robust at small
budgets first (``evaluations/results/baseline_curves_digits_fix.md``). Gen-AF's stage 1 (adversarial CE plus
``L_gr``, no clean CE term) collapses there too and takes the same ramp
(``evaluations/results/genaf_curves_digits_warmup.md``); with a ramp, a clean-probe head (``head_init="probe"``)
hurts rather than helps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import torch
import torch.nn.functional as F

from art_ssl.core.batching import map_batches
from art_ssl.core.checks import check_positive_int
from art_ssl.core.modes import evaluating

if TYPE_CHECKING:  # the mixins below are only ever combined with an EncoderHeadTrainer (their super() calls)
    from art_ssl.defences.trainer.base import EncoderHeadTrainer as _TrainerBase
else:
    _TrainerBase = object

HEAD_INITS = ("random", "probe")

#: ``eps_warmup_fraction`` of the adversarial-only losses (PGD-AT, MART) and of Gen-AF's stage 1 by default; chosen on
#: digits (``evaluations/results/baseline_curves_digits_fix.md``, ``genaf_curves_digits_warmup.md``). The papers'
#: recipe is 0.
EPS_WARMUP_FRACTION = 0.8


def check_head_init(head_init: object, head_init_epochs: object, eps_warmup_epochs: object = 0) -> None:
    """``ValueError`` naming the parameter unless ``head_init`` is one of :data:`HEAD_INITS`, the epochs > 0 and
    ``eps_warmup_epochs`` an int >= 0."""
    if head_init not in HEAD_INITS:
        raise ValueError(f"`head_init` must be one of {HEAD_INITS}, got {head_init!r}.")
    check_positive_int("head_init_epochs", head_init_epochs)
    if isinstance(eps_warmup_epochs, bool) or not isinstance(eps_warmup_epochs, int) or eps_warmup_epochs < 0:
        raise ValueError(f"`eps_warmup_epochs` must be an int >= 0, got {eps_warmup_epochs!r}.")


def check_eps_warmup_fraction(eps_warmup_fraction: object) -> None:
    """``ValueError`` naming the parameter unless ``eps_warmup_fraction`` is a number in [0, 1)."""
    value = eps_warmup_fraction
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`eps_warmup_fraction` must be a number in [0, 1), got {value!r}.")


def eps_scale(epoch: int, warmup_epochs: int) -> float:
    """Fraction of the PGD budget used in ``epoch`` (from 1) under a ``warmup_epochs`` linear warm-up."""
    return 1.0 if epoch > warmup_epochs else epoch / (warmup_epochs + 1)


def eps_ramp(step: int, total_steps: int, fraction: float) -> float:
    """Fraction of the PGD budget used at optimiser step ``step`` (counted from 0 over the run, as
    :class:`~art_ssl.core.driver.Step`'s ``count``) of a ``total_steps`` run whose first ``fraction`` is a linear
    warm-up: ``min(1, (step + 1) / (fraction * total_steps + 1))`` (1 throughout for ``fraction`` 0)."""
    return min(1.0, (step + 1) / (fraction * total_steps + 1))


class EpsWarmup(_TrainerBase):
    """
    Mixin for an :class:`~art_ssl.defences.trainer.base.EncoderHeadTrainer` subclass with ``eps_warmup_epochs`` and
    ``eps_warmup_fraction`` attributes: the training PGD runs at :func:`eps_scale` (per epoch) times
    :func:`eps_ramp` (per step) of ``eps`` and ``step_size``; validation at the full budget.
    """

    _eps_scale = 1.0
    eps_warmup_epochs: int  # set by the subclass's __init__
    eps_warmup_fraction = 0.0

    def _before_step(self, step: int, epoch: int, nb_epochs: int, optimizers: dict) -> None:
        super()._before_step(step, epoch, nb_epochs, optimizers)
        total = self._steps_per_epoch * nb_epochs  # set by ``_train`` for the loop being run
        self._eps_scale = eps_scale(epoch, self.eps_warmup_epochs) * eps_ramp(step, total, self.eps_warmup_fraction)

    def _train(self, *args, **kwargs) -> pd.DataFrame:
        try:
            return super()._train(*args, **kwargs)
        finally:  # between loops (a head fit, Gen-AF's stages) and after ``fit``: the full budget again
            self._eps_scale = 1.0

    def _pgd(self, loss_fn, x, eps=None, step_size=None, steps=None, random_start=True):
        if eps is None and self._eps_scale < 1.0:
            eps = self.eps * self._eps_scale
            step_size = (self.step_size if step_size is None else step_size) * self._eps_scale
        return super()._pgd(loss_fn, x, eps=eps, step_size=step_size, steps=steps, random_start=random_start)

    def _validate(self, x, y, batch_size: int) -> dict[str, float]:
        scale, self._eps_scale = self._eps_scale, 1.0
        try:
            return super()._validate(x, y, batch_size)
        finally:
            self._eps_scale = scale


def fit_head_on_clean(
    trainer, x: torch.Tensor, y: torch.Tensor, nb_epochs: int, batch_size: int, verbose: bool, stage: str | None = None
) -> pd.DataFrame:
    """
    Train ``trainer.model.head`` alone on the frozen encoder's clean embeddings (eval mode, embedded once: the
    same result as re-embedding every epoch, at a fraction of the cost), with the trainer's head optimiser (Adam,
    ``head_lr``, ``weight_decay``, ``lr_decay`` per epoch).

    :param trainer: An :class:`~art_ssl.defences.trainer.base.EncoderHeadTrainer`.
    :param x: Training images (torch, on the device).
    :param y: Their labels.
    :param nb_epochs: Epochs of the head.
    :param batch_size: Batch size.
    :param verbose: Progress bars.
    :param stage: Value of the history's ``stage`` column (``None``: no column).
    :return: The per-epoch history (loss, learning rate, seconds).
    """
    model = trainer.model
    with evaluating(model.encoder):
        features = map_batches(
            lambda xb: model.encoder(trainer._preprocess(xb)).flatten(1), x, batch_size=batch_size, no_grad=True
        )
    head = model.head
    params = [p for p in head.parameters() if p.requires_grad]
    if not params:
        raise ValueError("The head has no trainable parameters.")
    optimizers = {"head": torch.optim.Adam(params, lr=trainer.head_lr, weight_decay=trainer.weight_decay)}
    frozen = model.freeze_encoder
    try:
        model.freeze_encoder = True
        return trainer._train(
            features,
            y,
            None,
            nb_epochs,
            batch_size,
            verbose,
            lambda f, t: F.cross_entropy(head(f), t),
            optimizers,
            stage,
            checkpoint_name="head-init",  # not the main loop's file (the head fit has stage None too)
            lr_milestones=(),  # the milestones count the main loop's epochs
        )
    finally:
        model.freeze_encoder = frozen


def with_warm_start(trainer, run, x, y, val, nb_epochs: int, batch_size: int, verbose: bool) -> pd.DataFrame:
    """``run(x, y, val, nb_epochs, batch_size, verbose)`` preceded by :func:`fit_head_on_clean` when
    ``trainer.head_init == "probe"``. Returns ``run``'s history (the trainer's ``history_``: one row per training
    epoch, as without the warm start); the head fit's own history goes to ``trainer.head_init_history_``
    (``None`` without a warm start)."""
    trainer.head_init_history_ = None
    if trainer.head_init == "probe":
        trainer.head_init_history_ = fit_head_on_clean(trainer, x, y, trainer.head_init_epochs, batch_size, verbose)
    return run(x, y, val, nb_epochs, batch_size, verbose)


class HeadWarmStart(EpsWarmup):
    """
    Mixin for an :class:`~art_ssl.defences.trainer.base.EncoderHeadTrainer` subclass: the keyword-only parameters
    ``head_init`` (``"random"``: the head as given; ``"probe"``: :func:`fit_head_on_clean` first),
    ``head_init_epochs`` (10), ``eps_warmup_epochs`` (0: none) and ``eps_warmup_fraction`` (0: none), checked with
    the others, and a ``_run`` that honours them.
    """

    warm_start_params = ["head_init", "head_init_epochs", "eps_warmup_epochs", "eps_warmup_fraction"]
    head_init_history_: pd.DataFrame | None = None  # the head warm start's epochs (``head_init="probe"``)

    def __init__(
        self,
        *args,
        head_init: str = "random",
        head_init_epochs: int = 10,
        eps_warmup_epochs: int = 0,
        eps_warmup_fraction: float = 0.0,
        **kwargs,
    ) -> None:
        self.head_init = head_init
        self.head_init_epochs = head_init_epochs
        self.eps_warmup_epochs = eps_warmup_epochs
        self.eps_warmup_fraction = eps_warmup_fraction
        super().__init__(*args, **kwargs)

    def _check_params(self) -> None:
        super()._check_params()
        check_head_init(self.head_init, self.head_init_epochs, self.eps_warmup_epochs)
        check_eps_warmup_fraction(self.eps_warmup_fraction)

    def _run(self, x, y, val, nb_epochs: int, batch_size: int, verbose: bool) -> pd.DataFrame:
        return with_warm_start(self, super()._run, x, y, val, nb_epochs, batch_size, verbose)
