"""The mixed-precision policy (art_ssl.core.amp) and its use by trainers, pre-training and universal attacks:
correctness only (bf16 really runs, results stay close to float32, the networks are restored), never timing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from art_ssl.attacks.evasion import SSP
from art_ssl.core import amp as amp_module
from art_ssl.core.amp import amp_dtype, autocast_forward, cpu_bf16_supported
from art_ssl.estimators import PyTorchEncoder
from art_ssl.ssl import pretrain
from tests import resume_setup as setup

needs_bf16 = pytest.mark.skipif(not cpu_bf16_supported(), reason="this CPU has no oneDNN bf16 kernels")


def test_amp_dtype_choices(monkeypatch):
    assert amp_dtype("cpu", False) is None
    with pytest.raises(ValueError, match=r"`amp` must be True, False or 'auto', got 'yes'"):
        amp_dtype("cpu", "yes")
    with pytest.raises(ValueError, match=r"`my_amp` must be True, False or 'auto'"):
        amp_dtype("cpu", 1, name="my_amp")
    monkeypatch.setattr(amp_module, "cpu_bf16_supported", lambda: True)
    monkeypatch.setattr(amp_module, "cpu_flags", lambda: frozenset({"avx512f", "avx512_core"}))
    assert amp_dtype("cpu", "auto") is None  # AVX-512 without bf16 instructions: oneDNN emulates, float32
    assert amp_dtype("cpu", True) is torch.bfloat16
    for flag in ("avx512_bf16", "amx_bf16"):
        monkeypatch.setattr(amp_module, "cpu_flags", lambda flag=flag: frozenset({"avx512f", flag}))
        assert amp_dtype("cpu", "auto") is torch.bfloat16
    monkeypatch.setattr(amp_module, "cpu_bf16_supported", lambda: False)
    assert amp_dtype("cpu", "auto") is None
    with pytest.raises(ValueError, match=r"`amp=True` needs a CPU with bf16 kernels"):
        amp_dtype("cpu", True)


def test_trainer_refuses_amp_where_it_cannot_run(monkeypatch):
    monkeypatch.setattr(amp_module, "cpu_bf16_supported", lambda: False)
    with pytest.raises(ValueError, match=r"`amp=True` needs a CPU with bf16 kernels"):
        _trainer(amp=True)
    with pytest.raises(ValueError, match=r"`amp` must be True, False or 'auto'"):
        _trainer(amp="bf16")


def _trainer(**kwargs):
    return setup.trainer(**{"nb_epochs": 2, **kwargs})


@needs_bf16
def test_autocast_forward_runs_bf16_returns_float32_and_restores():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 14 * 14, 4))
    x = torch.rand(4, 1, 16, 16)
    reference = net(x)
    seen = []
    net[3].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with autocast_forward([net], "cpu", torch.bfloat16):
        with autocast_forward([net], "cpu", torch.bfloat16):  # nested (a trainer's PGD inside its step)
            out = net(x)
        assert "forward" in net.__dict__
    assert seen == [torch.bfloat16] and out.dtype == torch.float32
    assert not torch.equal(out, reference) and torch.allclose(out, reference, atol=0.05, rtol=0.05)
    assert "forward" not in net.__dict__ and torch.equal(net(x), reference)
    with pytest.raises(RuntimeError, match="boom"), autocast_forward([net], "cpu", torch.bfloat16):
        raise RuntimeError("boom")
    assert "forward" not in net.__dict__
    with autocast_forward([net], "cpu", None):
        assert torch.equal(net(x), reference)


@needs_bf16
def test_trainer_bf16_trains_close_to_float32():
    x, y = setup.data()
    fp32, bf16 = _trainer(amp=False), _trainer(amp=True)
    fp32.fit(x, y)
    bf16.fit(x, y)
    loss32, loss16 = fp32.history_["loss"].to_numpy(), bf16.history_["loss"].to_numpy()
    assert np.isfinite(loss16).all()
    assert not np.array_equal(loss32, loss16)  # bf16 really ran
    np.testing.assert_allclose(loss16, loss32, rtol=0.05)
    model = bf16.get_classifier().model
    assert "forward" not in model.encoder.__dict__ and "forward" not in model.head.__dict__
    assert all(p.dtype == torch.float32 for p in model.parameters())


@needs_bf16
def test_pretrain_bf16_close_to_float32():
    x, _ = setup.data()
    runs = {
        amp: pretrain(setup.encoder(), x, **{**setup.PRETRAIN, "nb_epochs": 1, "amp": amp}) for amp in (False, True)
    }
    loss32, loss16 = (runs[k].history["loss"].item() for k in (False, True))
    assert loss16 != loss32 and abs(loss16 - loss32) < 0.05 * abs(loss32)
    assert "forward" not in runs[True].encoder.__dict__


@needs_bf16
def test_universal_attack_bf16_close_to_float32():
    x, _ = setup.data()
    noises = {}
    for amp in (False, True):
        encoder = PyTorchEncoder(setup.encoder().eval(), (1, 16, 16), device_type="cpu")
        attack = SSP(encoder, layer="layer2", eps=0.05, step_size=0.01, batch_size=16, max_iter=3, verbose=False)
        attack.set_params(amp=amp)
        attack.generate(x)
        noises[amp] = attack.noise
        assert "forward" not in encoder.model.__dict__
    assert np.abs(noises[True]).max() <= 0.05 + 1e-7
    assert not np.array_equal(noises[True], noises[False])
    assert np.mean(np.sign(noises[True]) == np.sign(noises[False])) > 0.8  # the same ascent, up to rounding
    with pytest.raises(ValueError, match=r"`amp` must be True, False or 'auto'"):
        SSP(encoder, verbose=False).set_params(amp="fp16")
