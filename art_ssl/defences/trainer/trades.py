"""TRADES (Zhang et al., "Theoretically Principled Trade-off between Robustness and Accuracy", ICML 2019)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from art_ssl.core.modes import evaluating
from art_ssl.core.robust_losses import trades_kl
from art_ssl.defences.trainer.base import BetaRegularisedTrainer
from art_ssl.defences.trainer.warm_start import HeadWarmStart


class TRADESTrainer(HeadWarmStart, BetaRegularisedTrainer):
    """
    TRADES with its original inner maximisation: PGD on ``KL(f(x) || f(x'))`` from ``x + 0.001 N(0, I)``
    (not the cross-entropy), then ``CE(f(x), y) + beta * KL(f(x) || f(x'))`` (eq. 5). Budget and steps are the
    official CIFAR-10 defaults (eps 0.031, step 0.007, 10 steps, beta 6). Unlike ART's
    ``AdversarialTrainerTRADESPyTorch``, the whole loop stays in torch on the device.

    :param classifier: ART ``PyTorchClassifier`` whose model is an ``EncoderWithHead``; trained in place.
    :param beta: Weight of the robust KL term.
    :param head_init: ``"random"`` (the head as given, the official recipe) or ``"probe"`` (keyword only): fit the
                      head on clean data with the encoder frozen first (LP-FT, :mod:`~.warm_start`).
    :param head_init_epochs: Epochs of that head fit (keyword only).
    :param eps_warmup_epochs: The training PGD's budget grows linearly over these first epochs (keyword only; 0).
    :param eps_warmup_fraction: The same warm-up, step by step over this fraction of the run (keyword only; 0:
                                TRADES' clean term keeps it from collapsing where PGD-AT and MART need it,
                                :mod:`~.warm_start`).

    Other parameters as :class:`~art_ssl.defences.trainer.FineTuningTrainer`.
    """

    trainer_params = BetaRegularisedTrainer.trainer_params + HeadWarmStart.warm_start_params

    def _batch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), evaluating(self.model), self._autocast():
            clean_target = self._logits(x)  # the official code's inner target, also in eval mode
        x_adv = self._pgd(lambda x_adv: trades_kl(self._logits(x_adv), clean_target, reduction="sum"), x)
        logits_clean, logits_adv = self._logits(x), self._logits(x_adv)
        return F.cross_entropy(logits_clean, y) + self.beta * trades_kl(logits_adv, logits_clean)
