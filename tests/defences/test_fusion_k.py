"""ZePAD's federal sharpness ``k`` reaches the fused decision (the paper's k = 3 is only the default)."""

from __future__ import annotations

import math

import torch

from art_ssl.core.fusion import fuse_logits, fusion_weights
from art_ssl.defences.trainer import ZePADModel


class Fixed(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", torch.tensor([logits]))

    def forward(self, x):
        return self.logits.expand(len(x), -1)


def federal_weight(m0: float, m1: float, k: float) -> float:
    c0, c1 = m0 * math.exp(k * (m0 - 0.5)), m1 * math.exp(k * (m1 - 0.5))
    return c0 / (c0 + c1)


def test_federal_weights_follow_k_by_hand():
    z = torch.tensor([[[2.0, 0.0], [0.0, 0.5]]])  # branch confidences m = sigmoid(2), sigmoid(0.5)
    m0, m1 = 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(-0.5))
    for k in (0.0, 1.0, 7.0):
        assert math.isclose(float(fusion_weights(z, "federal", k=k)[0, 0]), federal_weight(m0, m1, k), rel_tol=1e-5)
    assert float(fusion_weights(z, "federal", k=7.0)[0, 0]) > float(fusion_weights(z, "federal", k=1.0)[0, 0])


def test_zepad_model_fuses_with_its_own_k():
    branches = [Fixed([2.0, 0.0]), Fixed([0.0, 0.5])]
    x = torch.zeros(1, 1, 2, 2)
    for k in (0.5, 8.0):
        model = ZePADModel(branches[:1], branches[1], fusion="federal", k=k)
        expected = fuse_logits(torch.stack([b(x) for b in branches], dim=1), "federal", k)
        torch.testing.assert_close(model(x), expected)
    assert not torch.allclose(ZePADModel(branches[:1], branches[1], k=0.5)(x), ZePADModel(branches[:1], branches[1])(x))


def test_zepad_model_importable_from_its_old_homes():
    """ZePADModel and is_zepad_classifier moved below the trainer and the detector; the old paths re-export them."""
    from art_ssl.defences import zepad_model
    from art_ssl.defences.trainer import zepad as trainer_zepad

    assert trainer_zepad.ZePADModel is zepad_model.ZePADModel is ZePADModel
    assert trainer_zepad.is_zepad_classifier is zepad_model.is_zepad_classifier
