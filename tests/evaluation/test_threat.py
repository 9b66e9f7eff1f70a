"""The threat model the audit grid and the evaluation scripts share (art_ssl.evaluation.threat), the perturbation
cache's public interface, and the presets of evaluations/."""

from __future__ import annotations

import ast
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from art_ssl.estimators import PyTorchEncoder
from art_ssl.evaluation import (
    GridConfig,
    apply_perturbation,
    build_victim,
    craft_perturbation,
    universal_perturbations,
)
from art_ssl.evaluation import threat as threat_module
from art_ssl.evaluation.registry import AttackSettings
from art_ssl.evaluation.sources import encoder_label
from art_ssl.models import SmallCNN

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = AttackSettings(surrogate_n=24, sign_epochs=1, seed=0)


@pytest.fixture
def tiny_encoder():
    torch.manual_seed(0)
    return PyTorchEncoder(SmallCNN(in_channels=1, widths=(4, 8), stem_stride=2).eval(), (1, 16, 16), device_type="cpu")


@pytest.fixture
def images():
    return np.random.default_rng(0).random((24, 1, 16, 16), dtype=np.float32)


def test_apply_perturbation_clips_to_the_pixel_range_and_refuses_other_shapes(images):
    noise = np.full((1, 1, 16, 16), 0.5, np.float32)
    out = apply_perturbation(images, noise)
    assert out.dtype == np.float32 and out.shape == images.shape
    assert out.max() <= 1.0 and out.min() >= 0.0
    np.testing.assert_allclose(out, np.minimum(images + 0.5, 1.0))
    with pytest.raises(ValueError, match="does not fit images"):
        apply_perturbation(images, np.zeros((1, 1, 8, 8), np.float32))


def test_build_victim_keeps_the_encoders_preprocessing_and_leaves_it_untrained(tiny_encoder):
    normalised = PyTorchEncoder(
        tiny_encoder.model, (1, 16, 16), preprocessing=(np.float32(0.5), np.float32(0.25)), device_type="cpu"
    )
    before = {k: v.clone() for k, v in normalised.model.state_dict().items()}
    victim = build_victim(normalised, 10, seed=3)
    x = np.random.default_rng(1).random((4, 1, 16, 16), dtype=np.float32)
    # the victim sees what the encoder sees: its embeddings of x are the normalised encoder's
    victim.model.eval()
    with torch.no_grad():
        inside = victim.model.encoder(torch.from_numpy((x - 0.5) / 0.25))
    np.testing.assert_allclose(inside.numpy(), normalised.predict(x), rtol=1e-5, atol=1e-5)
    expected = victim.model(torch.from_numpy((x - 0.5) / 0.25)).detach().numpy()
    np.testing.assert_allclose(victim.predict(x), expected, rtol=1e-5, atol=1e-5)
    for p in victim.model.parameters():  # training the victim does not touch the caller's encoder
        p.data.add_(1.0)
    assert all(torch.equal(before[k], v) for k, v in normalised.model.state_dict().items())
    # seeded head: the same seed gives the same head, another seed another one
    same = build_victim(normalised, 10, seed=3).model.head.state_dict()
    other = build_victim(normalised, 10, seed=4).model.head.state_dict()
    first = build_victim(normalised, 10, seed=3).model.head.state_dict()
    assert all(torch.equal(first[k], same[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_build_victim_on_a_bare_module_needs_its_input_shape(tiny_encoder):
    with pytest.raises(ValueError, match="input_shape"):
        build_victim(tiny_encoder.model, 10)
    with pytest.raises(TypeError, match="encoder"):
        build_victim("simclr_r18", 10)
    victim = build_victim(tiny_encoder.model, 10, input_shape=(1, 16, 16), normalize_input=True)
    assert victim.predict(np.zeros((2, 1, 16, 16), np.float32)).shape == (2, 10)


def test_craft_perturbation_is_seeded_and_within_budget(tiny_encoder, images):
    a = craft_perturbation("pap_ugs", tiny_encoder, 8.0, images, settings=SETTINGS, seed=1)
    b = craft_perturbation("pap_ugs", tiny_encoder, 8.0, images, settings=SETTINGS, seed=1)
    assert a["noise"].shape == (1, 1, 16, 16) and a["noise"].dtype == np.float32
    assert np.abs(a["noise"]).max() <= 8 / 255 + 1e-6 and np.abs(a["noise"]).max() > 0
    np.testing.assert_array_equal(a["noise"], b["noise"])
    with pytest.raises(ValueError, match="surrogate"):
        craft_perturbation("uapepgd", tiny_encoder, 8.0, images, settings=SETTINGS)


def test_universal_perturbations_are_cached_by_content(tiny_encoder, images, tmp_path, monkeypatch):
    calls = []
    craft = threat_module.craft_perturbation

    def counting(name, *args, **kwargs):
        calls.append(name)
        return craft(name, *args, **kwargs)

    monkeypatch.setattr(threat_module, "craft_perturbation", counting)
    first = universal_perturbations(tiny_encoder, ["pap_ugs", "ssp"], [8], images, SETTINGS, cache=tmp_path, label="t")
    assert sorted(first) == [("pap_ugs", 8.0), ("ssp", 8.0)] and len(calls) == 2
    again = universal_perturbations(tiny_encoder, ["pap_ugs", "ssp"], [8], images, SETTINGS, cache=tmp_path, label="t")
    assert len(calls) == 2  # read back, not learnt again
    for key in first:
        np.testing.assert_array_equal(first[key]["noise"], again[key]["noise"])
    # any change of what produced it -> learnt again: other settings, other attacker images, other weights
    universal_perturbations(tiny_encoder, ["ssp"], [8], images, replace(SETTINGS, sign_step=1e-3), cache=tmp_path)
    universal_perturbations(tiny_encoder, ["ssp"], [8], images[:20], SETTINGS, cache=tmp_path)
    changed = PyTorchEncoder(SmallCNN(in_channels=1, widths=(4, 8), stem_stride=2), (1, 16, 16), device_type="cpu")
    universal_perturbations(changed, ["ssp"], [8], images, SETTINGS, cache=tmp_path)
    assert len(calls) == 5
    assert len(list(tmp_path.glob("*.npz"))) == 5


def test_encoder_label_names_zoo_encoders_and_files():
    assert encoder_label("simclr_r18") == ("simclr_r18", "simclr")
    assert encoder_label("/some/folder/my_encoder.safetensors") == ("my_encoder", "")


# ------------------------------------------------------------------------------------------- evaluations/ presets
@pytest.fixture
def presets(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "evaluations"))
    sys.modules.pop("presets", None)
    import presets

    return presets


def test_the_scripts_preset_is_a_valid_grid_setting(presets):
    import argparse

    parser = argparse.ArgumentParser()
    presets.add_attack_arguments(parser)
    presets.add_task_epochs_argument(parser)
    args = parser.parse_args([])
    assert presets.attack_settings(args) == presets.CPU_ATTACK_SETTINGS
    config = GridConfig(encoders=("simclr_r18",), attack_settings=presets.attack_settings(args))
    assert config.attack_settings.gen_ngf == 32
    assert presets.task_epochs(args, "digits", 3) == 10 and presets.task_epochs(args, "fashion_mnist", 3) == 3
    bad = parser.parse_args(["--task-epochs", "digits=0"])
    with pytest.raises(ValueError, match="TASK=EPOCHS"):
        presets.task_epochs(bad, "digits", 3)


# What art_ssl.evaluation does, which no evaluations/ script may do again by itself.
MOVED = {"ResumableCSV", "load_any_encoder", "fresh_victim", "learn_noise", "make_attack", "model_dim"}


def test_evaluation_scripts_use_art_ssl_evaluation_instead_of_copies():
    scripts = sorted((ROOT / "evaluations").glob("*.py"))
    assert not (ROOT / "evaluations" / "common.py").exists()
    for path in scripts:
        tree = ast.parse(path.read_text())
        defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        assert not defined & MOVED, f"{path.name} defines {defined & MOVED} again"
        for node in ast.walk(tree):
            # results files go through the atomic, locked ResultStore, not a CSV appended in place (reproduce.py's
            # step log is a run log: every attempt is kept, failures included)
            if isinstance(node, ast.keyword) and node.arg == "mode" and path.name != "reproduce.py":
                assert not (isinstance(node.value, ast.Constant) and node.value.value == "a"), path.name
            # x + noise is clipped by apply_perturbation
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "np.clip":
                assert not isinstance(node.args[0], ast.BinOp), f"{path.name}: {ast.unparse(node)}"
            # no private attribute of another object is set
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                assert not (node.attr.startswith("_") and ast.unparse(node.value) != "self"), path.name


def test_build_victim_is_the_papers_victim_the_scripts_built_by_hand(tiny_encoder):
    """The construction the scripts had (seed, then a copy of the encoder with a 512-512-C head, dropout 0.2)."""
    import copy

    from art_ssl.estimators import encoder_classifier
    from art_ssl.models import MLPHead

    torch.manual_seed(3)
    by_hand = encoder_classifier(
        copy.deepcopy(tiny_encoder.model),
        10,
        head=MLPHead(tiny_encoder.embedding_dim, 10, dropout=0.2),
        freeze_encoder=False,
        input_shape=tiny_encoder.input_shape,
        device_type="cpu",
    )
    victim = build_victim(tiny_encoder, 10, seed=3)
    a, b = by_hand.model.state_dict(), victim.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = np.random.default_rng(0).random((4, 1, 16, 16), dtype=np.float32)
    np.testing.assert_array_equal(by_hand.predict(x), victim.predict(x))
