import pytest
import torch
from safetensors.torch import load_file

from art_ssl.cli import main
from art_ssl.models import build_encoder
from art_ssl.zoo import list_encoders


def test_probe_prints_a_table_with_the_raw_pixel_baseline(capsys, tmp_path):
    name = list_encoders()[0]
    csv = tmp_path / "probe.csv"
    assert main(["probe", "--encoders", name, "--n-train", "300", "--n-test", "100", "--device", "cpu",
                 "--csv", str(csv)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert name in out and "raw pixels (baseline)" in out and "300 train / 100 test" in out
    assert csv.read_text().startswith("encoder,method,probe_acc")


def test_probe_rejects_unknown_encoders(capsys):
    assert main(["probe", "--encoders", "nope"]) == 2
    assert "unknown encoder" in capsys.readouterr().err


def test_zoo_lists_encoders(capsys):
    assert main(["zoo"]) == 0
    assert list_encoders()[0] in capsys.readouterr().out


def test_pretrain_writes_loadable_safetensors(tmp_path, capsys):
    out = tmp_path / "enc.safetensors"
    args = ["pretrain", "--method", "byol", "--n-train", "256", "--epochs", "1", "--batch-size", "128", "--width", "4",
            "--size", "32", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    model = build_encoder("resnet18", in_channels=1, width=4, stem_stride=2)
    model.load_state_dict(load_file(str(out)))
    assert model.eval()(torch.zeros(1, 1, 32, 32)).shape == (1, 32)


def test_bad_cli_arguments_exit_with_usage():
    with pytest.raises(SystemExit):
        main(["probe", "--data", "imagenet"])
