"""The CLI side of bringing an encoder: pretrain/convert write metadata that audit reads back with no flag."""

import numpy as np
import pytest
import torch

from art_ssl.cli import build_parser, main
from art_ssl.evaluation.sources import EncoderOptions, load_encoder_spec
from art_ssl.models import build_encoder
from art_ssl.zoo import load_encoder, read_metadata


@pytest.mark.parametrize("width, stride", [(4, 1), (8, 2)])
def test_pretrain_at_any_width_and_stride_round_trips_through_audit(tmp_path, width, stride):
    out = tmp_path / "enc.safetensors"
    assert (
        main(
            [
                "pretrain",
                "--method",
                "simclr",
                "--n-train",
                "64",
                "--epochs",
                "1",
                "--batch-size",
                "32",
                "--width",
                str(width),
                "--stem-stride",
                str(stride),
                "--size",
                "32",
                "--device",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    meta = read_metadata(out)
    assert meta["arch"] == "zoo_resnet18" and meta["method"] == "simclr" and meta["input_shape"] == [1, 32, 32]
    encoder = load_encoder_spec(str(out), size=32)  # what `art-ssl audit --encoder enc.safetensors` does
    assert (encoder.model.width, encoder.model.stem_stride) == (width, stride)
    from safetensors.torch import load_file

    reference = build_encoder("zoo_resnet18", in_channels=1, width=width, stem_stride=stride)
    reference.load_state_dict(load_file(str(out)))
    x = np.random.default_rng(0).random((3, 1, 32, 32), dtype=np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(encoder.predict(x), reference.eval()(torch.from_numpy(x)).numpy(), atol=1e-6)


def test_convert_a_moco_checkpoint_then_load_it_with_no_flag(tmp_path, capsys):
    model = build_encoder("resnet18_cifar").eval()
    state = {f"module.encoder_q.{k}": v for k, v in model.state_dict().items()}
    torch.save({"epoch": 1, "arch": "resnet18", "state_dict": state}, tmp_path / "moco.pth.tar")
    out = tmp_path / "moco.safetensors"
    assert (
        main(
            [
                "convert",
                str(tmp_path / "moco.pth.tar"),
                "--out",
                str(out),
                "--mean",
                "0.4914",
                "0.4822",
                "0.4465",
                "--std",
                "0.247",
                "0.243",
                "0.261",
                "--method",
                "moco_v2",
            ]
        )
        == 0
    )
    assert "resnet18_cifar" in capsys.readouterr().out
    assert read_metadata(out)["std"] == pytest.approx([0.247, 0.243, 0.261])
    encoder = load_encoder(str(out), "cpu")
    x = np.random.default_rng(1).random((2, 3, 32, 32), dtype=np.float32)
    mean = np.array([0.4914, 0.4822, 0.4465], np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.247, 0.243, 0.261], np.float32).reshape(1, 3, 1, 1)
    with torch.no_grad():
        expected = model(torch.from_numpy((x - mean) / std)).numpy()
    np.testing.assert_allclose(encoder.predict(x), expected, atol=1e-5)
    # the same normalisation through the audit's flags gives the same embeddings
    flagged = load_encoder_spec(
        str(tmp_path / "moco.pth.tar"),
        32,
        options=EncoderOptions(mean=(0.4914, 0.4822, 0.4465), std=(0.247, 0.243, 0.261)),
    )
    np.testing.assert_allclose(flagged.predict(x), expected, atol=1e-5)


def test_audit_flags_reach_the_grid_and_refuse_torchscript_before_work(tmp_path, capsys):
    args = build_parser().parse_args(
        [
            "audit",
            "--encoder",
            "x.pth",
            "--arch",
            "resnet50",
            "--mean",
            "0.5",
            "--std",
            "0.25",
            "--key-prefix",
            "module.",
            "--trust-code",
        ]
    )
    assert (args.arch, args.mean, args.std, args.key_prefix, args.trust_code) == (
        "resnet50",
        [0.5],
        [0.25],
        "module.",
        True,
    )
    scripted = tmp_path / "enc.pt"
    torch.jit.save(torch.jit.script(build_encoder("zoo_resnet18", in_channels=1, width=4)), str(scripted))
    assert (
        main(
            [
                "audit",
                "--encoder",
                str(scripted),
                "--attacks",
                "ssp",
                "--defences",
                "none",
                "--size",
                "32",
                "--out",
                str(tmp_path / "a"),
            ]
        )
        == 2
    )
    assert "trust_code=True" in capsys.readouterr().err and not (tmp_path / "a" / "results.csv").exists()
