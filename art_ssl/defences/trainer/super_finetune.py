"""Super-fine-tuning (Sha, He, Berrang, Humbert, Zhang, "Fine-Tuning Is All You Need to Mitigate Backdoor Attacks",
arXiv 2212.09067, Section 4): clean fine-tuning of the whole model under a cyclic learning rate that spikes, in the
spirit of super-convergence, to wash a backdoor out."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from art.estimators.classification import PyTorchClassifier

from art_ssl.core.checks import check_fraction, check_positive_int, check_positive_number
from art_ssl.defences.trainer.base import EncoderHeadTrainer


def super_fine_tuning_lr(
    step: int,
    epoch: int,
    nb_epochs: int,
    base_lr: float,
    max_lr1: float,
    max_lr2: float,
    steps_up: int = 10,
    steps_down: int = 10,
    switch_fraction: float = 0.4,
) -> float:
    """
    Learning rate of optimiser step ``step`` (0-based, over the whole run) in epoch ``epoch`` (1-based): a triangle
    that rises linearly from ``base_lr`` to the peak in ``steps_up`` steps and falls back in ``steps_down`` steps,
    repeated; the peak is ``max_lr1`` during the first ``switch_fraction`` of the epochs and ``max_lr2`` after.
    """
    peak = max_lr1 if epoch - 1 < switch_fraction * nb_epochs else max_lr2
    position = step % (steps_up + steps_down)
    if position <= steps_up:
        return base_lr + (peak - base_lr) * position / steps_up
    return peak - (peak - base_lr) * (position - steps_up) / steps_down


class SuperFineTuningTrainer(EncoderHeadTrainer):
    """
    Super-fine-tuning (Sha et al., arXiv 2212.09067, Section 4): cross-entropy fine-tuning of encoder and head on
    clean data with SGD whose learning rate is set before every step by :func:`super_fine_tuning_lr` (two phases:
    peak ``max_lr1``, then the smaller ``max_lr2``).

    The paper's text gives the schedule's shape but we could not read its constants; the defaults are the values
    most often given for it (``base_lr`` 3e-4, ``max_lr1`` 0.1, ``max_lr2`` 1e-3, SGD momentum 0.9, weight decay
    5e-4, triangles of 10 + 10 steps, switch after 40% of the epochs). A public re-implementation
    (backdoor-toolbox) uses 0.03 / 2.5 / 0.05 without momentum for CIFAR-10 from scratch; every constant is a
    parameter.

    :param classifier: ART ``PyTorchClassifier`` over an ``EncoderWithHead`` (the downstream model on the possibly
                       backdoored encoder); trained in place.
    :param base_lr: The triangle's floor.
    :param max_lr1: Peak of the first phase.
    :param max_lr2: Peak after.
    :param steps_up: Steps from floor to peak.
    :param steps_down: Steps from peak back to floor.
    :param switch_fraction: Fraction of the epochs run with ``max_lr1``.
    :param momentum: SGD momentum.
    :param weight_decay: SGD weight decay.
    :param nb_epochs: Epochs.
    :param batch_size: Batch size.
    :param train_encoder: Fine-tune the encoder too (the paper fine-tunes the whole model).
    :param eps: Budget of the optional per-epoch validation PGD (``validation_pgd_steps``, default 0: BA only).
    :param amp: Mixed precision (see :mod:`art_ssl.core.amp`).
    :param channels_last: Channels-last training.
    :param seed: Seed.
    :param verbose: Progress bars.
    """

    trainer_params = EncoderHeadTrainer.trainer_params + [
        "base_lr",
        "max_lr1",
        "max_lr2",
        "steps_up",
        "steps_down",
        "switch_fraction",
        "momentum",
    ]

    def __init__(
        self,
        classifier: PyTorchClassifier,
        base_lr: float = 3e-4,
        max_lr1: float = 0.1,
        max_lr2: float = 1e-3,
        steps_up: int = 10,
        steps_down: int = 10,
        switch_fraction: float = 0.4,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        nb_epochs: int = 10,
        batch_size: int = 256,
        train_encoder: bool = True,
        eps: float = 8 / 255,
        validation_pgd_steps: int = 0,
        amp: bool | str = "auto",
        channels_last: bool = True,
        seed: int = 0,
        verbose: bool = True,
    ) -> None:
        self.base_lr = base_lr
        self.max_lr1 = max_lr1
        self.max_lr2 = max_lr2
        self.steps_up = steps_up
        self.steps_down = steps_down
        self.switch_fraction = switch_fraction
        self.momentum = momentum
        super().__init__(
            classifier,
            nb_epochs,
            batch_size,
            base_lr,
            base_lr,
            weight_decay,
            1.0,
            train_encoder,
            eps,
            eps / 4,
            10,
            "uniform",
            validation_pgd_steps,
            amp,
            channels_last,
            seed,
            verbose,
        )

    def _check_params(self) -> None:
        super()._check_params()
        for name in ("base_lr", "max_lr1", "max_lr2"):
            check_positive_number(name, getattr(self, name))
        check_positive_int("steps_up", self.steps_up)
        check_positive_int("steps_down", self.steps_down)
        check_fraction("switch_fraction", self.switch_fraction)
        check_positive_number("momentum", self.momentum, allow_zero=True)

    def _optimizers(self, encoder_lr: float, head_lr: float, weight_decay: float) -> dict[str, torch.optim.Optimizer]:
        """One SGD over the whole model (encoder too unless ``train_encoder=False``), as the paper fine-tunes."""
        modules = [self.model.encoder, self.model.head] if self.train_encoder else [self.model.head]
        params = [p for m in modules for p in m.parameters() if p.requires_grad]
        if not params:
            raise ValueError("The model has no trainable parameters.")
        return {"model": torch.optim.SGD(params, lr=self.base_lr, momentum=self.momentum, weight_decay=weight_decay)}

    def _before_step(self, step: int, epoch: int, nb_epochs: int, optimizers: dict) -> None:
        lr = super_fine_tuning_lr(
            step,
            epoch,
            nb_epochs,
            self.base_lr,
            self.max_lr1,
            self.max_lr2,
            self.steps_up,
            self.steps_down,
            self.switch_fraction,
        )
        for optimizer in optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr

    def _batch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self._logits(x), y)
