"""Plain fine-tuning and PGD adversarial training (Madry et al., ICLR 2018, eq. 2.1) of an encoder with a head."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from art.estimators.classification import PyTorchClassifier

from art_ssl.core.batching import map_batches
from art_ssl.core.checks import check_bool
from art_ssl.core.modes import evaluating
from art_ssl.defences.trainer.base import MILESTONE_PARAMS, EncoderHeadTrainer
from art_ssl.defences.trainer.warm_start import (
    EPS_WARMUP_FRACTION,
    EpsWarmup,
    check_eps_warmup_fraction,
    check_head_init,
    with_warm_start,
)


def check_fraction_or_zero(name: str, value: object) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a number in [0, 1), got {value!r}.")


class FineTuningTrainer(EpsWarmup, EncoderHeadTrainer):
    """
    Cross-entropy fine-tuning of the encoder and head on clean data, or, with ``adversarial=True``, on PGD
    adversarial examples only (PGD-AT: Madry et al., "Towards Deep Learning Models Resistant to Adversarial
    Attacks", ICLR 2018, eq. 2.1; uniform random start, ``pgd_steps`` sign steps of ``step_size``).

    Optimiser defaults are those of Gen-AF's code (encoder Adam 1e-4, head Adam 5e-3, weight decay 8e-4,
    ``ExponentialLR`` 0.96 per epoch), so that baselines and Gen-AF differ only in their loss.

    :param classifier: ART ``PyTorchClassifier`` whose model is an ``EncoderWithHead``; trained in place.
    :param adversarial: Train on PGD examples (PGD-AT) instead of clean ones.
    :param train_encoder: Fine-tune the encoder too (``False``: train the head only).
    :param eps: PGD budget (L-inf, pixel units); also the budget of the per-epoch validation PGD.
    :param step_size: PGD step.
    :param pgd_steps: PGD steps.
    :param nb_epochs: Epochs.
    :param batch_size: Batch size.
    :param encoder_lr: Encoder learning rate.
    :param head_lr: Head learning rate.
    :param weight_decay: Weight decay of both optimisers.
    :param lr_decay: ``ExponentialLR`` factor per epoch.
    :param lr_milestones: Epoch counts after which the learning rates are also multiplied by
                          ``lr_milestone_factor`` (``MultiStepLR`` chained with ``lr_decay``; each in
                          [1, ``nb_epochs``)).
                          ``()`` by default: Gen-AF's code decays exponentially only. TRADES' and MART's codes
                          step their rate down by 0.1 for the last epochs of the run (from epoch 75 of 80 and of 76:
                          ``lr_milestones=(74,)`` there), which is what lets a run end on a flat curve. The head warm
                          start and Gen-AF's stage 2 run without them.
    :param lr_milestone_factor: The factor of each milestone (0.1 as those codes).
    :param validation_pgd_steps: PGD steps of the per-epoch ``val_ra`` (0: benign accuracy only).
    :param amp: Mixed precision: ``True``, ``False`` or ``"auto"`` (bf16 where measured faster), see
                :mod:`art_ssl.core.amp`.
    :param channels_last: Train in channels-last memory format (faster convolutions); the model is returned in the
                          default format.
    :param seed: Seeds shuffling, random starts and dropout.
    :param verbose: Progress bars.
    :param head_init: ``"random"`` (the head as given) or ``"probe"``: when the encoder is trained, first fit the head
                      on clean data with the encoder frozen (LP-FT, :mod:`~.warm_start`). It does not keep PGD-AT from
                      collapsing on digits (the budget warm-up does; ``evaluations/defence_curves.py``).
    :param head_init_epochs: Epochs of that head fit.
    :param eps_warmup_epochs: PGD-AT's budget grows linearly over these first epochs (0: none; see
                              :mod:`~.warm_start`).
    :param eps_warmup_fraction: PGD-AT's budget grows linearly, step by step, over this fraction of the run's
                                optimiser steps (:mod:`~.warm_start`); 0.8 by default, a deviation from
                                Madry et al. (0, one argument away) without which PGD-AT collapses to a constant
                                predictor on digits (``evaluations/results/baseline_curves_digits_fix.md``). With both
                                warm-ups set, their fractions multiply.
    """

    trainer_params = EncoderHeadTrainer.trainer_params + [
        *MILESTONE_PARAMS,
        "adversarial",
        "head_init",
        "head_init_epochs",
        "eps_warmup_epochs",
        "eps_warmup_fraction",
        "clean_weight",
    ]

    head_init_history_: pd.DataFrame | None = None  # the head warm start's epochs (``head_init="probe"``)

    def __init__(
        self,
        classifier: PyTorchClassifier,
        adversarial: bool = False,
        nb_epochs: int = 50,
        batch_size: int = 256,
        encoder_lr: float = 1e-4,
        head_lr: float = 5e-3,
        weight_decay: float = 8e-4,
        lr_decay: float = 0.96,
        train_encoder: bool = True,
        eps: float = 8 / 255,
        step_size: float = 2 / 255,
        pgd_steps: int = 10,
        validation_pgd_steps: int = 10,
        amp: bool | str = "auto",
        channels_last: bool = True,
        seed: int = 0,
        verbose: bool = True,
        head_init: str = "random",
        head_init_epochs: int = 10,
        eps_warmup_epochs: int = 0,
        clean_weight: float = 0.0,
        eps_warmup_fraction: float = EPS_WARMUP_FRACTION,
        lr_milestones: Sequence[int] = (),
        lr_milestone_factor: float = 0.1,
    ) -> None:
        self.adversarial = adversarial
        self.head_init = head_init
        self.head_init_epochs = head_init_epochs
        self.eps_warmup_epochs = eps_warmup_epochs
        self.eps_warmup_fraction = eps_warmup_fraction
        self.clean_weight = clean_weight
        super().__init__(
            classifier,
            nb_epochs,
            batch_size,
            encoder_lr,
            head_lr,
            weight_decay,
            lr_decay,
            train_encoder,
            eps,
            step_size,
            pgd_steps,
            "uniform",
            validation_pgd_steps,
            amp,
            channels_last,
            seed,
            verbose,
            lr_milestones=lr_milestones,
            lr_milestone_factor=lr_milestone_factor,
        )

    def _check_params(self) -> None:
        super()._check_params()
        check_bool("adversarial", self.adversarial)
        check_head_init(self.head_init, self.head_init_epochs, self.eps_warmup_epochs)
        check_eps_warmup_fraction(self.eps_warmup_fraction)
        check_fraction_or_zero("clean_weight", self.clean_weight)

    def _run(self, x, y, val, nb_epochs: int, batch_size: int, verbose: bool) -> pd.DataFrame:
        if self.train_encoder or self.adversarial:
            return with_warm_start(self, super()._run, x, y, val, nb_epochs, batch_size, verbose)
        # Head only, on clean data: the frozen encoder (eval mode) gives the same embeddings every epoch, so embed
        # once and train the head on them (same result, a fraction of the time).
        self.model.freeze_encoder = True
        with evaluating(self.model.encoder):
            features = map_batches(
                lambda xb: self.model.encoder(self._preprocess(xb)).flatten(1), x, batch_size=batch_size, no_grad=True
            )
        head = self.model.head
        optimizers = self._optimizers(self.encoder_lr, self.head_lr, self.weight_decay)
        return self._train(
            features, y, val, nb_epochs, batch_size, verbose, lambda f, t: F.cross_entropy(head(f), t), optimizers, None
        )

    def _batch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self.adversarial:
            return F.cross_entropy(self._logits(x), y)
        loss = F.cross_entropy(self._logits(self._ce_pgd(x, y)), y)
        if self.clean_weight > 0:
            loss = self.clean_weight * F.cross_entropy(self._logits(x), y) + (1 - self.clean_weight) * loss
        return loss
