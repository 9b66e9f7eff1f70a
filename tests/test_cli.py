import pytest
import torch
from safetensors.torch import load_file

from art_ssl.cli import main
from art_ssl.models import build_encoder
from art_ssl.zoo import list_encoders
from tests.conftest import child_env


def test_probe_prints_a_table_with_the_raw_pixel_baseline(capsys, tmp_path):
    name = list_encoders()[0]
    csv = tmp_path / "probe.csv"
    assert (
        main(["probe", "--encoders", name, "--n-train", "300", "--n-test", "100", "--device", "cpu", "--csv", str(csv)])
        == 0
    )
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
    out = tmp_path / "new_folder" / "enc.safetensors"  # the folder is made (before training)
    args = [
        "pretrain",
        "--method",
        "byol",
        "--n-train",
        "256",
        "--epochs",
        "1",
        "--batch-size",
        "128",
        "--width",
        "4",
        "--size",
        "32",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    model = build_encoder("resnet18", in_channels=1, width=4, stem_stride=2)
    model.load_state_dict(load_file(str(out)))
    assert model.eval()(torch.zeros(1, 1, 32, 32)).shape == (1, 32)


def test_bad_cli_arguments_exit_with_usage(capsys):
    with pytest.raises(SystemExit):
        main(["probe", "--data", "imagenet"])
    assert main(["pretrain", "--out", "encoder.pt"]) == 2  # refused before any training
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: --out must name a .safetensors")


def test_audit_writes_results_report_and_figures(tmp_path, capsys):
    out = tmp_path / "audit"
    args = [
        "audit",
        "--encoder",
        "simclr_r18_badencoder",
        "--attacks",
        "ssp",
        "pgd",
        "badencoder",
        "--defences",
        "none",
        "--eps",
        "4",
        "8",
        "--n-train",
        "300",
        "--n-test",
        "200",
        "--whitebox-n",
        "40",
        "--surrogate-n",
        "300",
        "--sign-epochs",
        "2",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Report:" in printed and str((out / "report.html").resolve()) in printed
    for name in (
        "results.csv",
        "report.md",
        "report.html",
        "ba_ra.png",
        "ra_vs_eps.png",
        "perturbations.png",
        "asr.png",
    ):
        assert (out / name).stat().st_size > 0, name
    page = (out / "report.html").read_text()
    assert "<img src='ba_ra.png'" in page and "<table" in page and "simclr_r18_badencoder" in page
    assert (out / "ba_ra.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the same command again resumes: nothing left to do, same rows
    rows = (out / "results.csv").read_text()
    assert main(args) == 0 and (out / "results.csv").read_text() == rows


def test_audit_reports_bad_arguments_clearly(tmp_path, capsys):
    assert main(["audit", "--data", "imagenet-21k", "--out", str(tmp_path)]) == 2
    assert "Unknown dataset" in capsys.readouterr().err
    assert main(["audit", "--encoder", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path)]) == 2
    assert "neither a zoo encoder" in capsys.readouterr().err
    assert main(["audit", "--attacks", "nope", "--out", str(tmp_path)]) == 2
    assert "Unknown attack" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    assert "robust accuracy" in capsys.readouterr().out


def test_audit_with_an_unreadable_weight_file_fails_clearly_and_writes_nothing(tmp_path, capsys):
    weights = tmp_path / "encoder.safetensors"
    weights.write_bytes(b"\x00\x01 truncated download")
    out = tmp_path / "audit"
    assert main(["audit", "--encoder", str(weights), "--attacks", "pgd", "--defences", "none", "--out", str(out)]) == 2
    assert "not a valid safetensors file" in capsys.readouterr().err
    assert not (out / "results.csv").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["probe", "--help"],
        ["pretrain", "--help"],
        ["audit", "--help"],
        ["convert", "--help"],
    ],
)
def test_help_imports_no_heavy_library(argv):
    """`art-ssl --help` answers at once: no torch, ART, pandas or numpy import (they cost seconds of CPU)."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom art_ssl.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'art', 'pandas', 'numpy') if m in sys.modules), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
    )
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr
    assert "usage:" in done.stdout or "art-ssl" in done.stdout
    if argv == ["audit", "--help"]:  # the names come from art_ssl.audit_names, not from the registry (ART)
        assert "defences: none, finetune" in done.stdout and "zepad" in done.stdout
