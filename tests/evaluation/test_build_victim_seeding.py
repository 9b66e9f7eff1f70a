"""build_victim draws its head inside the scoped seeding policy: same seed, same head (the one torch.manual_seed(seed)
gave before), and the caller's torch, numpy and random states untouched."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from art_ssl.estimators import PyTorchEncoder
from art_ssl.evaluation import build_victim
from art_ssl.models import MLPHead, SmallCNN


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    return PyTorchEncoder(SmallCNN(in_channels=1, widths=(4, 8), stem_stride=2).eval(), (1, 16, 16), device_type="cpu")


def _draws() -> tuple[torch.Tensor, np.ndarray, float]:
    return torch.rand(3), np.random.rand(3), random.random()


def test_build_victim_leaves_the_callers_random_state_untouched(encoder):
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    expected = _draws()
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    build_victim(encoder, 10, seed=7)
    got = _draws()
    assert torch.equal(expected[0], got[0])
    np.testing.assert_array_equal(expected[1], got[1])
    assert expected[2] == got[2]


def test_same_seed_same_head_as_the_global_seeding_gave(encoder):
    torch.manual_seed(5)  # the caller's state differs between the two calls: the head must not depend on it
    first = build_victim(encoder, 10, seed=3).model.head.state_dict()
    torch.rand(17)
    second = build_victim(encoder, 10, seed=3).model.head.state_dict()
    torch.manual_seed(3)  # what build_victim did before the scoped policy: the same head, bit for bit
    legacy = MLPHead(encoder.embedding_dim, 10, dropout=0.2).state_dict()
    assert first.keys() == legacy.keys()
    assert all(torch.equal(first[k], second[k]) and torch.equal(first[k], legacy[k]) for k in first)
    other = build_victim(encoder, 10, seed=4).model.head.state_dict()
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_bad_seed_raises_before_any_work(encoder):
    with pytest.raises(ValueError, match="`seed`"):
        build_victim(encoder, 10, seed=-1)
    with pytest.raises(ValueError, match="`seed`"):
        build_victim(encoder, 10, seed=1.5)
