"""EncoderDistillation.use_teacher: one prepared teacher shared by several distillations (evaluations/backdoor_eval.py
shares the fine-tuned teacher across its variants) without touching private state."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from art_ssl.defences.transformer import EncoderDistillation
from art_ssl.estimators import PyTorchEncoder
from art_ssl.models import SmallCNN


def _encoder(widths=(4, 8)) -> PyTorchEncoder:
    torch.manual_seed(0)
    return PyTorchEncoder(SmallCNN(in_channels=1, widths=widths, stem_stride=2).eval(), (1, 16, 16), device_type="cpu")


def _distillation(encoder: PyTorchEncoder, **kwargs) -> EncoderDistillation:
    options = {"student": "poisoned", "loss": "mse", "layers": ("layer1",), "nb_epochs": 1, "batch_size": 8}
    return EncoderDistillation(encoder, verbose=False, **{**options, **kwargs})


def test_a_shared_teacher_is_used_as_given_and_not_fitted_again(monkeypatch):
    encoder = _encoder()
    x = np.random.default_rng(0).random((16, 1, 16, 16), dtype=np.float32)
    first = _distillation(encoder, teacher="finetuned", teacher_epochs=1)
    first.fit(x)
    second = _distillation(encoder, teacher="finetuned", teacher_epochs=1)
    second.use_teacher(first.teacher_)
    assert second.is_fitted and second.teacher_ is first.teacher_
    assert not any(p.requires_grad for p in second.teacher_.parameters()) and not second.teacher_.training

    def refit(*args, **kwargs):
        raise AssertionError("the teacher was fitted again")

    monkeypatch.setattr(second, "fit", refit)
    student = second(x)
    assert student.model is not first.teacher_ and student.input_shape == encoder.input_shape


def test_use_teacher_refuses_what_is_not_a_teacher_of_this_encoder():
    distillation = _distillation(_encoder())
    with pytest.raises(TypeError, match="`teacher` must be an nn.Module"):
        distillation.use_teacher("teacher.safetensors")
    with pytest.raises(ValueError, match="`teacher` must have the architecture"):
        distillation.use_teacher(copy.deepcopy(_encoder(widths=(4, 16)).model))
    assert not distillation.is_fitted
