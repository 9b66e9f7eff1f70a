"""TRADES (Zhang et al., "Theoretically Principled Trade-off between Robustness and Accuracy", ICML 2019)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from art.estimators.classification import PyTorchClassifier

from art_ssl.core.checks import check_positive_number
from art_ssl.core.modes import evaluating
from art_ssl.core.robust_losses import trades_kl
from art_ssl.defences.trainer.base import EncoderHeadTrainer


class TRADESTrainer(EncoderHeadTrainer):
    """
    TRADES with its original inner maximisation: PGD on ``KL(f(x) || f(x'))`` from ``x + 0.001 N(0, I)``
    (not the cross-entropy), then ``CE(f(x), y) + beta * KL(f(x) || f(x'))`` (eq. 5). Budget and steps are the
    official CIFAR-10 defaults (eps 0.031, step 0.007, 10 steps, beta 6). Unlike ART's
    ``AdversarialTrainerTRADESPyTorch``, the whole loop stays in torch on the device.

    :param classifier: ART ``PyTorchClassifier`` whose model is an ``EncoderWithHead``; trained in place.
    :param beta: Weight of the robust KL term.
    Other parameters as :class:`~art_ssl.defences.trainer.FineTuningTrainer`.
    """

    trainer_params = EncoderHeadTrainer.trainer_params + ["beta"]

    def __init__(
        self,
        classifier: PyTorchClassifier,
        beta: float = 6.0,
        nb_epochs: int = 50,
        batch_size: int = 256,
        encoder_lr: float = 1e-4,
        head_lr: float = 5e-3,
        weight_decay: float = 8e-4,
        lr_decay: float = 0.96,
        train_encoder: bool = True,
        eps: float = 0.031,
        step_size: float = 0.007,
        pgd_steps: int = 10,
        validation_pgd_steps: int = 10,
        amp: bool = False,
        channels_last: bool = True,
        seed: int = 0,
        verbose: bool = True,
    ) -> None:
        self.beta = beta
        super().__init__(classifier, nb_epochs, batch_size, encoder_lr, head_lr, weight_decay, lr_decay,
                         train_encoder, eps, step_size, pgd_steps, "normal", validation_pgd_steps, amp, channels_last,
                         seed, verbose)  # fmt: skip

    def _check_params(self) -> None:
        super()._check_params()
        check_positive_number("beta", self.beta, allow_zero=True)

    def _batch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), evaluating(self.model), self._autocast():
            clean_target = self._logits(x)  # the official code's inner target, also in eval mode
        x_adv = self._pgd(lambda x_adv: trades_kl(self._logits(x_adv), clean_target, reduction="sum"), x)
        logits_clean, logits_adv = self._logits(x), self._logits(x_adv)
        return F.cross_entropy(logits_clean, y) + self.beta * trades_kl(logits_adv, logits_clean)
