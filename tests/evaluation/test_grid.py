"""The audit grid: real cells on a zoo encoder, resuming, the Ray backend, and clear failures."""

from __future__ import annotations

import errno
import os

import numpy as np
import pandas as pd
import pytest
import torch

from art_ssl.evaluation import grid as grid_module
from art_ssl.evaluation.grid import KEY, GridConfig, run_grid
from art_ssl.evaluation.registry import AttackSettings
from art_ssl.evaluation.sources import EncoderOptions, load_data_spec, load_encoder_spec
from art_ssl.evaluation.store import ResultStore, ResultsWriteError

# Small and fast: the zoo's SimCLR encoder at 32x32, 400 / 200 images, one universal and one white-box attack.
TINY = {
    "tasks": ("fashion-mnist-subset",),
    "attacks": ("ssp", "pgd"),
    "defences": ("none",),
    "eps": (8.0,),
    "size": 32,
    "n_train": 400,
    "n_test": 200,
    "whitebox_n": 100,
    "surrogate_n": 400,
    "attack_settings": AttackSettings(sign_epochs=2, sign_step=1e-3),
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("grid") / "results.csv"
    config = GridConfig(encoders=("simclr_r18",), **TINY)
    return config, out, run_grid(config, out, progress=False)


def test_grid_rows_measure_attacks(tiny_run):
    config, out, frame = tiny_run
    assert len(frame) == 2 and set(frame.attack) == {"ssp", "pgd"} and (frame.status == "ok").all()
    assert set(KEY) | {
        "BA",
        "RA",
        "fooling_rate",
        "attack_seconds",
        "train_seconds",
        "art_ssl_version",
        "art_version",
        "torch_version",
    } <= set(frame.columns)
    row = frame.set_index("attack")
    assert row.loc["pgd", "RA"] < row.loc["pgd", "BA"] - 0.3  # white-box PGD at 8/255
    assert row.loc["ssp", "RA"] < row.loc["ssp", "BA"]  # the universal perturbation hurts too
    assert 0 <= row.loc["ssp", "fooling_rate"] <= 1 and np.isnan(row.loc["pgd", "fooling_rate"])
    assert len(list((out.parent / "perturbations").glob("simclr_r18_ssp_eps8_s0_p*.npz"))) == 1
    pd.testing.assert_frame_equal(pd.read_csv(out), frame, check_dtype=False)


def test_grid_resumes_without_recomputing(tiny_run, monkeypatch):
    config, out, frame = tiny_run

    def fail(*args, **kwargs):
        raise AssertionError("a finished cell was computed again")

    monkeypatch.setattr(grid_module, "run_job", fail)
    monkeypatch.setattr(grid_module, "learn_perturbation", fail)
    again = run_grid(config, out, progress=False)
    pd.testing.assert_frame_equal(again, frame)


def test_killed_run_keeps_finished_rows_and_resumes(tmp_path):
    out = tmp_path / "results.csv"
    config = GridConfig(encoders=("simclr_r18",), **{**TINY, "attacks": ("pgd",), "defences": ("none", "finetune")})

    class Killed(Exception):
        pass

    def kill(rows):
        raise Killed

    with pytest.raises(Killed):  # dies right after its first job was written
        run_grid(config, out, progress=False, on_rows=kill)
    assert len(pd.read_csv(out)) == 1
    frame = run_grid(config, out, progress=False)
    assert sorted(frame.defence) == ["finetune", "none"]


def test_backdoored_zoo_encoder_gets_asr_rows(tmp_path):
    config = GridConfig(
        encoders=("simclr_r18_badencoder", "simclr_r18"),
        **{**TINY, "attacks": ("badencoder",), "size": 64, "n_train": 300},
    )
    assert [c["encoder"] for c in config.cells()] == ["simclr_r18_badencoder"]  # no trigger for the clean one
    frame = run_grid(config, tmp_path / "r.csv", progress=False)
    assert frame.loc[0, "status"] == "ok" and frame.loc[0, "ASR"] > 0.9 and frame.loc[0, "target"] == 9


def test_ray_backend_matches_local(tiny_run, tmp_path):
    pytest.importorskip("ray")
    config, _, local = tiny_run
    frame = run_grid(config, tmp_path / "results.csv", backend="ray", progress=False)
    merged = local.merge(frame, on=list(KEY), suffixes=("_local", "_ray"))
    assert len(merged) == 2
    np.testing.assert_allclose(merged.BA_ray, merged.BA_local, atol=0.02)
    np.testing.assert_allclose(merged.RA_ray, merged.RA_local, atol=0.03)


def test_bad_grids_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="no cells"):
        run_grid(GridConfig(encoders=(), **TINY), tmp_path / "r.csv")
    with pytest.raises(ValueError, match="`attacks`: Unknown attack"):
        GridConfig(encoders=("simclr_r18",), attacks=("deepfool2",))
    with pytest.raises(ValueError, match="Unknown defence"):
        GridConfig(encoders=("simclr_r18",), defences=("magic",))
    with pytest.raises(ValueError, match="eps"):
        GridConfig(encoders=("simclr_r18",), eps=(0.0,))
    with pytest.raises(TypeError, match="tuple"):
        GridConfig(encoders="simclr_r18")
    with pytest.raises(ValueError, match="backend"):
        run_grid(GridConfig(encoders=("simclr_r18",), **TINY), tmp_path / "r.csv", backend="dask")


def test_sources_reject_unknown_and_unsafe_inputs(tmp_path):
    with pytest.raises(ValueError, match="Unknown dataset"):
        load_data_spec("imagenet-21k")
    with pytest.raises(ValueError, match="needs a folder"):
        load_data_spec("cifar10")
    with pytest.raises(ValueError, match="neither a zoo encoder"):
        load_encoder_spec("no_such_encoder")
    garbage = tmp_path / "broken.safetensors"
    garbage.write_bytes(b"\x00not a safetensors file")
    with pytest.raises(ValueError, match="not a valid safetensors"):
        load_encoder_spec(str(garbage))
    pickled = tmp_path / "model.pt"
    torch.save({"weight": torch.zeros(3)}, pickled)
    with pytest.raises(ValueError, match="No encoder backbone recognised"):
        load_encoder_spec(str(pickled))
    torch.jit.save(torch.jit.script(torch.nn.Flatten()), str(pickled))
    with pytest.raises(ValueError, match="trust_code=True"):
        load_encoder_spec(str(pickled))


def test_torchscript_and_safetensors_encoders_load(tmp_path):
    from safetensors.torch import save_file

    encoder = load_encoder_spec("simclr_r18", size=32)
    scripted = tmp_path / "enc.pt"
    torch.jit.save(torch.jit.trace(encoder.model.eval(), torch.zeros(1, 1, 32, 32)), str(scripted))
    weights = tmp_path / "enc.safetensors"
    save_file({k: v.contiguous() for k, v in encoder.model.state_dict().items()}, str(weights))
    x = load_data_spec("fashion-mnist-subset", size=32, n_test=8).x_test
    for spec in (scripted, weights):
        loaded = load_encoder_spec(str(spec), size=32, options=EncoderOptions(trust_code=True))
        assert loaded.input_shape == (1, 32, 32)
        np.testing.assert_allclose(loaded.predict(x), encoder.predict(x), atol=1e-4)


def test_full_disk_leaves_the_results_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "results.csv"
    store = ResultStore(path, ("a",))
    store.append([{"a": 1, "v": 0.5}])
    before = path.read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(ResultsWriteError, match="disk is full"):
        store.append([{"a": 2, "v": 0.7}])
    assert path.read_bytes() == before  # the last complete file, not a truncated one
    assert not [p for p in tmp_path.iterdir() if p.name != "results.csv"]  # no temporary file left behind
    monkeypatch.undo()
    store.append([{"a": 2, "v": 0.7}])
    assert ResultStore(path, ("a",)).has(a=2) and len(pd.read_csv(path)) == 2


def test_unreadable_results_file_is_refused(tmp_path):
    path = tmp_path / "results.csv"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not a readable CSV|key columns"):
        ResultStore(path, ("encoder",))


def test_autoattack_and_torchattacks_cells(tmp_path):
    """AutoAttack (pyautoattack's run_standard_evaluation and ART's AutoAttack) and a torchattacks attack as audit
    cells: each is a row of its own and each breaks the undefended downstream model at 8/255."""
    attacks = ("autoattack", "art_autoattack", "torchattacks:APGD")
    config = GridConfig(encoders=("simclr_r18",), **{**TINY, "attacks": attacks, "whitebox_n": 12})
    frame = run_grid(config, tmp_path / "r.csv", progress=False).set_index("attack")
    assert set(frame.index) == set(attacks) and (frame.status == "ok").all()
    assert (frame.n_test == 12).all()  # white-box cells attack the first `whitebox_n` test images
    for attack in attacks:
        assert frame.loc[attack, "RA"] <= frame.loc[attack, "BA"] - 0.3, attack
        assert frame.loc[attack, "attack_seconds"] > 0
