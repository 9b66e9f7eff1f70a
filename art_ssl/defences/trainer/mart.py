"""MART (Wang et al., "Improving Adversarial Robustness Requires Revisiting Misclassified Examples", ICLR 2020)."""

from __future__ import annotations

import torch

from art_ssl.core.robust_losses import mart_loss
from art_ssl.defences.trainer.base import BetaRegularisedTrainer
from art_ssl.defences.trainer.warm_start import HeadWarmStart


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

    Other parameters as :class:`~art_ssl.defences.trainer.FineTuningTrainer`.
    """

    trainer_params = BetaRegularisedTrainer.trainer_params + HeadWarmStart.warm_start_params

    def _batch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_adv = self._ce_pgd(x, y)
        return mart_loss(self._logits(x_adv), self._logits(x), y, self.beta)
