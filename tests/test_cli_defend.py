"""``art-ssl defend``: one defence on one task, written as .safetensors; data-parallel under torchrun."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from art_ssl.cli import main
from tests.conftest import child_env

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--defence", "trades", "--data", "digits", "--size", "8", "--n-train", "96", "--n-test", "60"]
ARGS += ["--epochs", "1", "--batch-size", "32", "--pgd-steps", "2", "--amp", "off", "--device", "cpu"]


def _write_encoder(path: Path, seed: int, channels: int = 1) -> str:
    from art_ssl.models import build_encoder
    from art_ssl.zoo import save_encoder

    torch.manual_seed(seed)
    kwargs = {"in_channels": channels, "width": 4, "stem_stride": 1}
    shape = (channels, 8, 8)
    save_encoder(
        build_encoder("zoo_resnet18", **kwargs), path, arch="zoo_resnet18", arch_kwargs=kwargs, input_shape=shape
    )
    return str(path)


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    return _write_encoder(tmp_path_factory.mktemp("enc") / "enc.safetensors", 0)


def _metadata(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return f.metadata()


def test_defend_under_torchrun_with_two_processes_equals_one(encoder_file, tmp_path, capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["defend", "--encoder", encoder_file, *ARGS, "--out", str(tmp_path / "one.safetensors")]) == 0
    finally:
        torch.set_num_threads(threads)
    one_line = capsys.readouterr().out.splitlines()[0]
    env = {**child_env(), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "art_ssl"]
    command += ["defend", "--encoder", encoder_file, *ARGS, "--out", str(tmp_path / "two.safetensors")]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("test BA") == 1  # rank 0 alone prints and writes
    from safetensors.torch import load_file

    from art_ssl.zoo import load_encoder

    one, two = load_file(tmp_path / "one.safetensors"), load_file(tmp_path / "two.safetensors")
    # Adam over 3 steps: float32 rounding of the summed gradients moves weights by a fraction of the lr (5e-3)
    assert max(float((one[k].double() - two[k].double()).abs().max()) for k in one) < 2.5e-3
    meta = _metadata(tmp_path / "two.head.safetensors")
    assert meta["art_ssl.defence"] == "trades" and meta["art_ssl.task"] == "digits"
    assert float(meta["art_ssl.test_ba"]) == pytest.approx(
        float(_metadata(tmp_path / "one.head.safetensors")["art_ssl.test_ba"]), abs=0.05
    )
    assert "test BA" in one_line
    assert load_encoder(str(tmp_path / "two.safetensors"), "cpu").input_shape == (1, 8, 8)  # readable by the zoo


def test_defend_zepad_writes_the_fused_model_that_load_zepad_reads(encoder_file, tmp_path, capsys):
    import numpy as np
    from safetensors.torch import load_file

    from art_ssl.defences import load_zepad
    from art_ssl.defences.detector import ZePADDetector
    from art_ssl.evaluation.sources import load_data_spec

    aux, bmp = _write_encoder(tmp_path / "aux.safetensors", 1), _write_encoder(tmp_path / "bmp.safetensors", 2)
    args = ["defend", "--encoder", encoder_file, *ARGS, "--out", str(tmp_path / "z.safetensors")]
    args = [a if a != "trades" else "zepad" for a in args]
    args += ["--zepad-auxiliary", aux, "--zepad-bmp", bmp, "--zepad-head-epochs", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "zepad on digits: test BA" in out and "the fused ZePAD model" in out
    meta = _metadata(tmp_path / "z.zepad.safetensors")
    assert meta["art_ssl.defence"] == "zepad" and meta["art_ssl.zepad_bmp"] == bmp
    assert meta["art_ssl.zepad_auxiliary"] == aux
    # the reloaded model scores the same test set exactly as the trained one did before it was written
    task = load_data_spec("digits", 8, 1, 96, 60, 0)
    fused = load_zepad(tmp_path / "z.zepad.safetensors")
    ba = float(np.mean(fused.predict(task.x_test).argmax(1) == task.y_test))
    assert ba == pytest.approx(float(meta["art_ssl.test_ba"]), abs=1e-6)
    assert ZePADDetector(fused).detect(task.x_test[:5])[1].shape == (5,)
    # --out holds the victim's MPAE encoder: the fused model's first branch, moved away from the public weights
    written, bundle, public = (
        load_file(p) for p in (tmp_path / "z.safetensors", tmp_path / "z.zepad.safetensors", encoder_file)
    )
    assert all(torch.equal(written[k], bundle[f"mpae.0.encoder.{k}"]) for k in written)
    assert any(not torch.equal(written[k], public[k]) for k in written if written[k].is_floating_point())


def test_defend_refuses_bad_outputs_and_a_zepad_checkpoint_dir(encoder_file, tmp_path, capsys):
    assert main(["defend", "--encoder", encoder_file, "--defence", "trades", "--out", "x.pt"]) == 2
    assert "--out must name a .safetensors file" in capsys.readouterr().err
    args = ["defend", "--encoder", encoder_file, "--defence", "zepad", "--out", str(tmp_path / "z.safetensors")]
    assert main([*args, "--checkpoint-dir", str(tmp_path / "ck")]) == 2
    assert "--checkpoint-dir: ZePAD's training is not resumable" in capsys.readouterr().err
    # a ZePAD partner of another input format (3 channels for 1) is refused before any training
    rgb = _write_encoder(tmp_path / "rgb.safetensors", 1, channels=3)
    assert main([*args, *ARGS[2:], "--zepad-auxiliary", rgb]) == 2
    assert "`zepad_auxiliary` takes inputs (3, 8, 8)" in capsys.readouterr().err
