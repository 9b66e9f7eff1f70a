"""The shared PGD and the adversarial-training losses, against hand-computed values."""

import math

import pytest
import torch
import torch.nn.functional as F

from art_ssl.core.pgd import pgd_linf
from art_ssl.core.robust_losses import genetic_regularization, mart_loss, trades_kl


def test_pgd_stays_in_budget_raises_loss_and_leaves_parameters_alone():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    loss = lambda xa: F.cross_entropy(model(xa), y, reduction="sum")  # noqa: E731
    for start in (None, "uniform", "normal"):
        x_adv = pgd_linf(
            loss, x, eps=0.05, step_size=0.01, steps=10, random_start=start, generator=torch.Generator().manual_seed(0)
        )
        assert (x_adv - x).abs().max() <= 0.05 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
        assert loss(x_adv) > loss(x)
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="`random_start`"):
        pgd_linf(loss, x, eps=0.05, step_size=0.01, steps=1, random_start="gaussian")


def test_trades_kl_and_mart_by_hand():
    clean, adv = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    p, q = torch.softmax(clean, 1)[0], torch.softmax(adv, 1)[0]
    kl = float((p * (p / q).log()).sum())
    assert math.isclose(float(trades_kl(adv, clean)), kl, rel_tol=1e-5)
    y = torch.tensor([0])
    # boosted CE: -log q_0 - log(1.0001 - q_1 + 1e-12) (class 1 is the top wrong class); KL weighted by 1 - p_0
    expected = -math.log(q[0]) - math.log(1.0001 - q[1] + 1e-12) + 6.0 * kl * (1.0000001 - float(p[0]))
    assert math.isclose(float(mart_loss(adv, clean, y, beta=6.0)), expected, rel_tol=1e-4)


def _fuzzy_ce(p, q, eps=1e-7):
    total = 0.0
    for pi, qi in zip(p, q, strict=True):
        total += pi * (math.log(pi + eps) - math.log(qi + eps))
        total += (1 - pi) * (math.log(1 - pi + eps) - math.log(1 - qi + eps))
    return total


@pytest.mark.parametrize("same_class", [True, False])
def test_genetic_regularization_two_samples_by_hand(same_class):
    # With two samples each row's nearest neighbour is the other one, so every shifted distance is 0 and Q is
    # uniform. P's off-diagonal distance becomes +2S (different classes) or is clamped to ~0 (same class); its
    # diagonal is clamped to ~0. Similarities 1 - d/2, row-normalised.
    ref, adj = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    y = torch.tensor([0, 0 if same_class else 1])
    losses = torch.tensor([1.0, 3.0])
    s = math.tanh(4.0 / 32)
    off = 1e-7 if same_class else 2 * s
    sim = [1 - 1e-7 / 2, 1 - off / 2]
    p_row = [v / sum(sim) for v in sim]
    q_row = [0.5, 0.5]
    expected = 2 * _fuzzy_ce(p_row, q_row)  # both rows are the same by symmetry
    got = genetic_regularization(ref, adj, y, losses)
    assert math.isclose(float(got), expected, rel_tol=1e-4, abs_tol=1e-6)
    assert (float(got) > 1e-3) == (not same_class)
