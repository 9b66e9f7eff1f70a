"""Issue 16: the KD distillation term as the official code computes it (``DistillKL(0.5)`` of
wssun/SSLBackdoorMitigation: ``KLDivLoss(reduction='batchmean')`` on the 4-d feature map, times T^2, at layer1,
weight 1000)."""

import math

import pytest
import torch

from art_ssl.core.losses import channel_kl
from art_ssl.defences.transformer import EncoderDistillation
from art_ssl.estimators import PyTorchEncoder
from art_ssl.models import ResNet18


def official_distill_kl(student, teacher, temperature):
    """The official term, written out: softmax over dim 1 of the (N, C, H, W) maps, every element's
    ``p_t (log p_t - log p_s)`` summed, divided by N, times T^2."""
    log_s = torch.log_softmax(student / temperature, dim=1)
    p_t = torch.softmax(teacher / temperature, dim=1)
    return float((p_t * (torch.log(p_t) - log_s)).sum() / student.shape[0] * temperature**2)


def test_channel_kl_is_the_official_term_and_the_old_one_is_hw_times_smaller():
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(3, 5, 4, 6, generator=g), torch.randn(3, 5, 4, 6, generator=g)
    official = official_distill_kl(student, teacher, 0.5)
    assert math.isclose(float(channel_kl(student, teacher)), official, rel_tol=1e-5)
    assert math.isclose(float(channel_kl(student, teacher, reduction="mean")), official / 24, rel_tol=1e-5)
    with pytest.raises(ValueError, match="`reduction`"):
        channel_kl(student, teacher, reduction="sum")


def test_kl_distillation_defaults_to_layer1_and_weight_1000():
    model = ResNet18(in_channels=1, width=4, stem_stride=2)
    encoder = PyTorchEncoder(model, (1, 32, 32), device_type="cpu")
    kd = EncoderDistillation(encoder, loss="kl", verbose=False)
    assert kd.layers == ("layer1",) and kd._beta == 1000.0 and kd.kl_reduction == "batchmean"
    assert EncoderDistillation(encoder, loss="attention", verbose=False).layers == (
        "layer1",
        "layer2",
        "layer3",
        "layer4",
    )
    assert EncoderDistillation(encoder, loss="kl", layers=["layer2"], verbose=False).layers == ("layer2",)
    with pytest.raises(ValueError, match="`kl_reduction`"):
        EncoderDistillation(encoder, loss="kl", kl_reduction="sum")
