"""MART (Wang et al., "Improving Adversarial Robustness Requires Revisiting Misclassified Examples", ICLR 2020)."""
from __future__ import annotations

import torch
from art.estimators.classification import PyTorchClassifier

from art_ssl.core.checks import check_positive_number
from art_ssl.core.robust_losses import mart_loss
from art_ssl.defences.trainer.base import EncoderHeadTrainer


class MARTTrainer(EncoderHeadTrainer):
    """
    MART: PGD on the cross-entropy from ``x + 0.001 N(0, I)``, then the misclassification-aware loss of eq. 9
    (:func:`art_ssl.core.robust_losses.mart_loss`). Budget, steps and ``beta`` are the official defaults
    (eps 0.031, step 0.007, 10 steps, beta 6). ART has no MART.

    :param classifier: ART ``PyTorchClassifier`` whose model is an ``EncoderWithHead``; trained in place.
    :param beta: Weight of the misclassification-weighted KL term.
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
        x_adv = self._ce_pgd(x, y)
        return mart_loss(self._logits(x_adv), self._logits(x), y, self.beta)
