"""SimSiam's and Barlow Twins' losses on inputs small enough to compute by hand (projector replaced by identity)."""

from __future__ import annotations

import math

import torch
from torch import nn

from art_ssl.ssl import BarlowTwins, SimSiam


class Constant(nn.Module):
    """A predictor whose output does not depend on its input: the loss then reaches the inputs only through the
    targets, which SimSiam's stop-gradient must cut."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = nn.Parameter(value)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.value.expand(len(z), -1)


def float_(t: torch.Tensor) -> float:
    return float(t.detach())


def simsiam_with(predictor: nn.Module) -> SimSiam:
    method = SimSiam(nn.Identity(), feature_dim=2, proj_dim=2, pred_hidden=2)
    method.projector, method.predictor = nn.Identity(), predictor
    return method


def test_simsiam_is_the_symmetric_negative_cosine_by_hand():
    rotate = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        rotate.weight.copy_(torch.tensor([[0.0, -1.0], [1.0, 0.0]]))  # +90 degrees
    x1, x2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    # p1 = R x1 = (0, 1): cos(p1, x2) = 1; p2 = R x2 = (-1, 0): cos(p2, x1) = -1 -> (-1 + 1) / 2
    assert math.isclose(float_(simsiam_with(rotate)(x1, x2)), 0.0, abs_tol=1e-6)
    x1b = torch.tensor([[1.0, 1.0]])  # p1 = (-1, 1): cos(p1, x2) = 1/sqrt2; p2 = (-1, 0): cos(p2, x1b) = -1/sqrt2
    assert math.isclose(float_(simsiam_with(rotate)(x1b, x2)), 0.0, abs_tol=1e-6)
    x2c = torch.tensor([[3.0, 4.0]])  # p1 = (0, 1): cos = 0.8; p2 = (-4, 3): cos(p2, x1) = -0.8
    assert math.isclose(float_(simsiam_with(rotate)(x1, x2c)), 0.0, abs_tol=1e-6)
    x1d = torch.tensor([[0.0, 1.0]])  # p1 = (-1, 0): cos(p1, x2c) = -0.6; p2 = (-4, 3): cos(p2, x1d) = 0.6
    assert math.isclose(float_(simsiam_with(nn.Identity())(x1d, x2c)), -0.8, rel_tol=1e-6)  # -(0.8 + 0.8) / 2


def test_simsiam_stops_the_gradient_at_the_targets():
    x1 = torch.tensor([[1.0, 2.0]], requires_grad=True)
    x2 = torch.tensor([[2.0, -1.0]], requires_grad=True)
    predictor = Constant(torch.tensor([[1.0, 0.0]]))
    loss = simsiam_with(predictor)(x1, x2)
    # cos((1, 0), x2) = 2/sqrt5, cos((1, 0), x1) = 1/sqrt5
    assert math.isclose(float_(loss), -(3 / math.sqrt(5)) / 2, rel_tol=1e-6)
    loss.backward()
    # d cos(v, x) / dv at v = (1, 0) is (0, x_2 / |x|): (0, -1/sqrt5) for x2, (0, 2/sqrt5) for x1; halved and negated
    torch.testing.assert_close(predictor.value.grad, torch.tensor([[0.0, -1 / (2 * math.sqrt(5))]]))
    for x in (x1, x2):
        assert x.grad is None or torch.count_nonzero(x.grad) == 0


def test_barlow_twins_loss_by_hand():
    method = BarlowTwins(nn.Identity(), feature_dim=2, proj_dim=2, lambd=0.5)
    method.projector = nn.Identity()
    z1 = torch.tensor([[1.0, 2.0], [-1.0, 0.0]])  # batch-normalised: (1, 1), (-1, -1) over sqrt(1 + 1e-5)
    z2 = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])  # batch-normalised: (1, -1), (-1, 1)
    s2 = 1 + 1e-5  # BatchNorm1d's biased variance (1) plus its eps
    c = torch.tensor([[1.0, -1.0], [1.0, -1.0]]) / s2  # z1n^T z2n / N
    on_diag = (c[0, 0] - 1) ** 2 + (c[1, 1] - 1) ** 2
    off_diag = c[0, 1] ** 2 + c[1, 0] ** 2
    expected = float(on_diag + 0.5 * off_diag)  # ~ 0 + 4 + 0.5 * 2
    assert math.isclose(float_(method(z1, z2)), expected, rel_tol=1e-5)
    assert math.isclose(expected, 5.0, rel_tol=1e-3)
