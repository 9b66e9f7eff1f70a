"""
What TRADES and MART compute, on a model small enough to work out by hand.

The hand model: 16 pixels, all 1.0; an identity encoder and a head with logits ``(0, t)``, ``t = 0.25 sum(x) - 2``, so
the clean logit gap is 2 and every pixel pulls the gap the same way. PGD's steps (3 x 0.1) exceed the budget 0.3, so
the inner maximisation ends on a corner of the box that the objective decides:

- TRADES' inner KL grows whichever way ``t`` moves from its clean value; from ``x + 0.001 N(0, I)`` clipped to
  ``[0, 1]`` every pixel is at most 1, so ``t`` starts below 2 and PGD drives it down to ``x - 0.3`` (gap 0.8).
  PGD on the cross-entropy of label 0 would instead push ``t`` up, into the clip at 1 (gap 2, zero KL).
- MART's inner cross-entropy of label 1 pushes ``t`` down: ``x - 0.3`` as well.

With one batch, ``history_["loss"]`` is the loss of that batch before the update, so it must equal the formula.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from art_ssl.defences.trainer import MARTTrainer, TRADESTrainer
from art_ssl.estimators import encoder_classifier

EPS, BETA, PIXELS, GAP = 0.3, 6.0, 16, 2.0
HAND = {
    "eps": EPS,
    "step_size": 0.1,
    "pgd_steps": 3,
    "beta": BETA,
    "nb_epochs": 1,
    "batch_size": 8,
    "validation_pgd_steps": 0,
    "channels_last": False,
    "amp": False,
    "verbose": False,
    "eps_warmup_fraction": 0.0,  # the papers' recipe (MART's default warms up): the full budget from the first step
}


def hand_classifier():
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(PIXELS, PIXELS, bias=False))
    head = nn.Linear(PIXELS, 2)
    with torch.no_grad():
        encoder[1].weight.copy_(torch.eye(PIXELS))
        head.weight.zero_()
        head.weight[1] = 0.25
        head.bias.copy_(torch.tensor([0.0, GAP - 0.25 * PIXELS]))
    return encoder_classifier(encoder, 2, head=head, freeze_encoder=False, input_shape=(1, 4, 4), device_type="cpu")


def probs(gap: float) -> tuple[float, float]:
    p1 = 1 / (1 + math.exp(-gap))
    return 1 - p1, p1


def kl(p, q) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))


def first_batch_loss(trainer_cls, label: int) -> float:
    x, y = np.ones((8, 1, 4, 4), np.float32), np.full(8, label)
    trainer = trainer_cls(hand_classifier(), **HAND)
    trainer.fit(x, y)
    return float(trainer.history_["loss"].iloc[0])


def test_trades_loss_is_ce_plus_beta_kl_clean_to_adv_at_the_kl_maximiser():
    p, q = probs(GAP), probs(GAP - 0.25 * PIXELS * EPS)  # clean; adversarial x - eps (the KL ascent's corner)
    expected = -math.log(p[0]) + BETA * kl(p, q)
    got = first_batch_loss(TRADESTrainer, label=0)
    assert math.isclose(got, expected, rel_tol=1e-4), (got, expected)
    # what the classic mistakes would give: the KL reversed, or the inner PGD on the cross-entropy (adv == clean)
    assert not math.isclose(got, -math.log(p[0]) + BETA * kl(q, p), rel_tol=1e-3)
    assert not math.isclose(got, -math.log(p[0]), rel_tol=1e-3)


def test_mart_loss_is_boosted_ce_plus_weighted_kl_at_the_ce_maximiser():
    p, q = probs(GAP), probs(GAP - 0.25 * PIXELS * EPS)  # label 1: the CE ascent lowers the gap, to x - eps
    boosted_ce = -math.log(q[1]) - math.log(1.0001 - q[0] + 1e-12)
    expected = boosted_ce + BETA * kl(p, q) * (1.0000001 - p[1])
    got = first_batch_loss(MARTTrainer, label=1)
    assert math.isclose(got, expected, rel_tol=1e-4), (got, expected)
    assert not math.isclose(got, boosted_ce + BETA * kl(p, q), rel_tol=1e-3)  # without the misclassification weight
