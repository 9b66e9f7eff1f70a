"""MART (Wang et al., "Improving Adversarial Robustness Requires Revisiting Misclassified Examples", ICLR 2020)."""

from __future__ import annotations

from typing import Any

import torch

from art_ssl.core.robust_losses import mart_loss
from art_ssl.defences.trainer.base import BetaRegularisedTrainer
from art_ssl.defences.trainer.warm_start import EPS_WARMUP_FRACTION, HeadWarmStart


class MARTTrainer(HeadWarmStart, BetaRegularisedTrainer):
    """
    MART: PGD on the cross-entropy from ``x + 0.001 N(0, I)``, then the misclassification-aware loss of eq. 9
    (:func:`art_ssl.core.robust_losses.mart_loss`). Budget, steps and ``beta`` are the official defaults
    (eps 0.031, step 0.007, 10 steps, beta 6). ART has no MART.

    :param classifier: ART ``PyTorchClassifier`` whose model is an ``EncoderWithHead``; trained in place.
    :param beta: Weight of the misclassification-weighted KL term.
    :param head_init: ``"random"`` (the head as given, the official recipe) or ``"probe"`` (keyword only): fit the
                      head on clean data with the encoder frozen first (LP-FT, :mod:`~.warm_start`).
    :param head_init_epochs: Epochs of that head fit (keyword only).
    :param eps_warmup_epochs: The training PGD's budget grows linearly over these first epochs (keyword only; 0).
    :param eps_warmup_fraction: The training PGD's budget grows linearly, step by step, over this fraction of the
                                run's optimiser steps (keyword only; 0.8 by default, a deviation from the
                                official code, 0, one argument away): without it MART collapses to a constant
                                predictor on digits (:mod:`~.warm_start`,
                                ``evaluations/results/baseline_curves_digits_fix.md``).

    Other parameters as :class:`~art_ssl.defences.trainer.FineTuningTrainer`.
    """

    trainer_params = BetaRegularisedTrainer.trainer_params + HeadWarmStart.warm_start_params

    def __init__(self, *args: Any, eps_warmup_fraction: float = EPS_WARMUP_FRACTION, **kwargs: Any) -> None:
        super().__init__(*args, eps_warmup_fraction=eps_warmup_fraction, **kwargs)

    def _batch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_adv = self._ce_pgd(x, y)
        return mart_loss(self._logits(x_adv), self._logits(x), y, self.beta)
