"""Release packaging: what `pip install art_ssl` users get and the messages they see."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from art.estimators.classification import PyTorchClassifier

import art_ssl
from art_ssl.attacks.evasion import TorchattacksAttack
from art_ssl.estimators import EncoderWithHead

ROOT = Path(__file__).resolve().parents[1]


def test_torchattacks_missing_names_the_install_command(monkeypatch):
    model = EncoderWithHead(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    classifier = PyTorchClassifier(model, torch.nn.CrossEntropyLoss(), (1, 2, 2), 2, clip_values=(0, 1))
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # `import torchattacks` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install --no-deps torchattacks=="):
        TorchattacksAttack(classifier, "PGD", eps=8 / 255)


def test_package_data_and_licences_are_declared():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = meta["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["art_ssl"] and (Path(art_ssl.__file__).parent / "py.typed").is_file()
    for path in meta["project"]["license-files"]:
        assert (ROOT / path).is_file(), path
    assert "LICENSE-fashion-mnist.txt" in package_data["art_ssl.data"]
    assert "Zalando" in (ROOT / "art_ssl/data/LICENSE-fashion-mnist.txt").read_text()
    art = next(d for d in meta["project"]["dependencies"] if d.startswith("adversarial-robustness-toolbox"))
    assert ">=" in art and "<" in art, f"ART must be pinned as a tested range, got {art!r}"
