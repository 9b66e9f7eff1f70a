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


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    from art_ssl.models import build_encoder
    from art_ssl.zoo import save_encoder

    torch.manual_seed(0)
    kwargs = {"in_channels": 1, "width": 4, "stem_stride": 1}
    path = tmp_path_factory.mktemp("enc") / "enc.safetensors"
    save_encoder(
        build_encoder("zoo_resnet18", **kwargs), path, arch="zoo_resnet18", arch_kwargs=kwargs, input_shape=(1, 8, 8)
    )
    return str(path)


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


def test_defend_refuses_zepad_and_a_non_safetensors_output(encoder_file, capsys):
    with pytest.raises(SystemExit, match="2"):  # zepad fuses several encoders: not one encoder + head to write
        main(["defend", "--encoder", encoder_file, "--defence", "zepad", "--out", "x.safetensors"])
    assert "invalid choice: 'zepad'" in capsys.readouterr().err
    assert main(["defend", "--encoder", encoder_file, "--defence", "trades", "--out", "x.pt"]) == 2
    assert "--out must name a .safetensors file" in capsys.readouterr().err
