"""Audit integrity: content keys, settings-keyed resume, trusted caches only, concurrent writers, output faults,
degenerate results, and no hidden mutation of the caller's encoder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from art_ssl.evaluation import grid as grid_module
from art_ssl.evaluation.grid import GridConfig, run_grid
from art_ssl.evaluation.keys import encoder_key
from art_ssl.evaluation.sources import load_encoder_spec
from art_ssl.evaluation.store import ResultStore, check_output_folder
from tests.conftest import child_env

ROOT = Path(__file__).resolve().parents[2]
FAST = {
    "tasks": ("fashion-mnist-subset",),
    "attacks": ("ssp", "pgd"),
    "defences": ("none",),
    "eps": (8.0,),
    "size": 32,
    "n_train": 60,
    "n_test": 30,
    "whitebox_n": 10,
    "surrogate_n": 40,
}


@pytest.fixture
def fake_work(monkeypatch):
    """Count the work instead of doing it: rows carry a number that says which call made them."""
    calls = {"jobs": 0, "perturbations": 0}

    def learn(config, encoder, attack, eps_255, seed):
        calls["perturbations"] += 1
        return {
            "noise": np.zeros((1, 1, config.size, config.size), np.float32),
            "attack_seconds": 0.0,
            "fooling_rate": 0.0,
        }

    def job(config, job, cells, perturbations):
        calls["jobs"] += 1
        return [
            {**c, "BA": 0.5, "RA": 0.25, "n_train": config.n_train, "call": calls["jobs"], "status": "ok"}
            for c in cells
        ]

    monkeypatch.setattr(grid_module, "learn_perturbation", learn)
    monkeypatch.setattr(grid_module, "run_job", job)
    return calls


def test_other_settings_compute_their_own_cells_and_report_only_them(tmp_path, fake_work):
    out = tmp_path / "results.csv"
    config = GridConfig(encoders=("simclr_r18",), **FAST)
    first = run_grid(config, out, progress=False)
    assert len(first) == 2 and fake_work == {"jobs": 1, "perturbations": 1}
    assert run_grid(config, out, progress=False).equals(first) and fake_work["jobs"] == 1  # same settings: resume
    for change in (
        {"n_train": 50},
        {"epochs": 3},
        {"attack_settings": replace(config.attack_settings, sign_epochs=7)},
        {"size": 28},
        {"surrogate_n": 30},
    ):
        jobs = fake_work["jobs"]
        frame = run_grid(replace(config, **change), out, progress=False)
        assert fake_work["jobs"] == jobs + 1, change  # never the old rows for the new settings
        assert len(frame) == 2 and (frame.call == jobs + 1).all(), change  # only the current configuration's cells
    assert len(pd.read_csv(out)) == 12  # the old rows stay in the file
    # the perturbation is keyed by what shapes it, not by the downstream settings
    assert fake_work["perturbations"] == 4  # first, sign_epochs, size, surrogate_n (not n_train, not epochs)


def test_encoders_are_keyed_by_content_not_file_name(tmp_path):
    from safetensors.torch import save_file

    encoder = load_encoder_spec("simclr_r18", size=32)
    state = {k: v.contiguous() for k, v in encoder.model.state_dict().items()}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    save_file(state, str(tmp_path / "a" / "enc.safetensors"))
    state = {k: (v + 0.01 if v.is_floating_point() else v) for k, v in state.items()}
    save_file(state, str(tmp_path / "b" / "enc.safetensors"))
    a, b = (encoder_key(load_encoder_spec(str(tmp_path / d / "enc.safetensors"), size=32)) for d in "ab")
    assert a != b  # one file name, other weights
    assert a == encoder_key(encoder)  # the zoo's weights under another name: the same encoder
    assert encoder_key(load_encoder_spec("simclr_r18", size=64)) != a  # another input size is another encoder


def test_a_cached_perturbation_with_another_key_is_never_used(tmp_path, fake_work):
    out = tmp_path / "results.csv"
    config = GridConfig(encoders=("simclr_r18",), **{**FAST, "attacks": ("ssp",)})
    run_grid(config, out, progress=False)
    (cached,) = (tmp_path / "perturbations").glob("*.npz")
    assert oct(cached.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # files follow the umask
    with np.load(cached) as data:
        meta = json.loads(str(data["meta"]))
    planted = {"noise": np.full((1, 1, 32, 32), 8 / 255, np.float32), "meta": json.dumps({**meta, "key": "other"})}
    np.savez(cached, **planted)  # planted under the right name with another recorded key
    out.unlink()
    run_grid(config, out, progress=False)
    assert fake_work["perturbations"] == 2  # learnt again, not trusted
    with np.load(cached) as data:
        np.savez(cached, noise=data["noise"] + 1e-3, meta=str(data["meta"]))  # right key, altered noise
    out.unlink()
    run_grid(config, out, progress=False)
    assert fake_work["perturbations"] == 3


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_two_processes_appending_to_one_results_file_lose_no_row(tmp_path):
    """Two real processes append 40 rows each, one at a time, into one file: all 80 rows survive."""
    script = textwrap.dedent("""
        import sys
        from art_ssl.evaluation.store import ResultStore
        store = ResultStore(sys.argv[1], ("cell_key",))
        for i in range(40):
            store.append([{"cell_key": f"k{sys.argv[2]}{i}", "writer": sys.argv[2], "value": i}])
    """)
    out = tmp_path / "results.csv"
    env = child_env()
    procs = [subprocess.Popen([sys.executable, "-c", script, str(out), w], env=env) for w in "ab"]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    frame = pd.read_csv(out)
    assert len(frame) == 80 and frame.cell_key.is_unique and sorted(frame.writer.unique()) == ["a", "b"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def test_a_cell_written_by_another_run_meanwhile_is_kept_once(tmp_path):
    path = tmp_path / "results.csv"
    mine, theirs = ResultStore(path, ("cell_key",)), ResultStore(path, ("cell_key",))
    theirs.append([{"cell_key": "k1", "RA": 0.1}])
    mine.append([{"cell_key": "k1", "RA": 0.9}, {"cell_key": "k2", "RA": 0.2}])  # k1 is already there: kept once
    frame = pd.read_csv(path)
    assert frame.cell_key.tolist() == ["k1", "k2"] and frame.RA.tolist() == [0.1, 0.2]


def test_output_folder_faults_are_found_before_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="out '.*' is a file"):
        check_output_folder(blocker)
    with pytest.raises(ValueError, match="--out '.*sub' is a file, not a folder \\('.*file' is a file\\)"):
        check_output_folder(blocker / "sub", "--out")
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o500)
    if not os.access(read_only, os.W_OK):  # root writes anywhere
        with pytest.raises(ValueError, match="--out '.*' is not writable"):
            check_output_folder(read_only, "--out")
    with pytest.raises(ValueError, match="needs at least"):
        check_output_folder(tmp_path, min_free_bytes=2**62)
    config = GridConfig(encoders=("simclr_r18",), **FAST)
    with pytest.raises(ValueError, match="`out` '.*' is a folder"):
        run_grid(config, tmp_path, progress=False)


def test_a_failed_perturbation_write_removes_its_temporary_file(tmp_path, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    need = ("pkey", "simclr_r18", "ssp", 8.0, 0)
    learnt = {"noise": np.zeros((1, 1, 8, 8), np.float32), "fooling_rate": 0.0, "attack_seconds": 0.0}
    with pytest.raises(grid_module.ResultsWriteError, match="disk is full"):
        grid_module._save_perturbation(tmp_path, need, learnt)
    assert list(tmp_path.iterdir()) == []


def test_an_encoder_with_nan_weights_is_refused_before_work(tmp_path, fake_work):
    from safetensors.torch import save_file

    encoder = load_encoder_spec("simclr_r18", size=32)
    state = {k: v.contiguous() for k, v in encoder.model.state_dict().items()}
    state = {k: (torch.full_like(v, float("nan")) if k.endswith("weight") else v) for k, v in state.items()}
    save_file(state, str(tmp_path / "nan.safetensors"))
    config = GridConfig(encoders=(str(tmp_path / "nan.safetensors"),), **FAST)
    with pytest.raises(ValueError, match="non-finite embeddings"):
        run_grid(config, tmp_path / "results.csv", progress=False)
    assert fake_work == {"jobs": 0, "perturbations": 0}


def test_degenerate_models_never_get_an_ok_row():
    logits = np.array([[np.nan, 1.0], [0.0, 1.0]])
    assert grid_module._degenerate_logits(logits, "x").startswith("degenerate: non-finite")
    assert grid_module._degenerate_logits(np.eye(2), "x") is None


def _job_row_with_head(monkeypatch, config, set_head):
    """The row of a real grid job (simclr_r18 on the Fashion-MNIST subset, one PGD cell) whose "training" only calls
    ``set_head(head)`` on the victim's head."""

    class SetHead:
        def __init__(self, name, classifier, *args, **kwargs):
            self.classifier = classifier

        def fit(self, x, y):
            set_head(self.classifier.model.head)

        def get_classifier(self):  # an ART Trainer's result (ZePAD's is a new, fused classifier)
            return self.classifier

    monkeypatch.setattr(grid_module, "make_defence_trainer", SetHead)
    job = {"encoder": "simclr_r18", "task": "fashion-mnist-subset", "defence": "none", "seed": 0}
    cell = {**job, "attack": "pgd", "eps_255": 8.0, "perturbation_key": ""}
    (row,) = grid_module.run_job(config, job, [cell], {})
    return row


def test_a_constant_predictor_is_flagged(monkeypatch):
    """A real job whose trained model predicts one class everywhere (its head zeroed, bias to class 3)."""
    config = GridConfig(encoders=("simclr_r18",), **{**FAST, "attacks": ("pgd",)})

    def constant(head):
        for p in head.parameters():
            torch.nn.init.zeros_(p)
        list(head.parameters())[-1].data[3] = 1.0

    row = _job_row_with_head(monkeypatch, config, constant)
    assert row["status"].startswith("degenerate: constant predictor") and np.isnan(row["RA"])


def test_chance_level_threshold_is_the_one_sided_z_test():
    y = np.repeat(np.arange(10), 54)  # digits' 540 test images, balanced: p0 = 0.1
    threshold = 0.1 + 3.09 * np.sqrt(0.1 * 0.9 / 540)  # 0.1399
    assert grid_module._chance_level(0.102, y).startswith("degenerate: chance-level predictor (BA 0.102")
    assert grid_module._chance_level(threshold - 1e-4, y) is not None
    assert grid_module._chance_level(threshold + 1e-4, y) is None
    skewed = np.array([0] * 80 + [1] * 20)  # the majority class, not 1/K, is what a label-blind model scores
    assert grid_module._chance_level(0.85, skewed) is not None and grid_module._chance_level(0.95, skewed) is None


def test_a_near_constant_predictor_is_flagged(monkeypatch):
    """A real job whose model predicts only classes 3 and 4 (by the sign of one embedding coordinate): more than
    one class, so not a constant predictor, but its BA is at chance and its rows must not read ``ok``."""
    config = GridConfig(encoders=("simclr_r18",), **{**FAST, "n_test": 200, "attacks": ("pgd",)})

    def two_classes(head):
        layers = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
        for layer in layers:
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
        for layer in layers[:-1]:  # pass coordinate 0 of the embedding (and its negation) through the ReLUs
            layer.weight.data[0, 0], layer.weight.data[1, 0] = 1.0, -1.0
        layers[-1].weight.data[3, 0], layers[-1].weight.data[4, 1] = 1.0, 1.0

    row = _job_row_with_head(monkeypatch, config, two_classes)
    assert row["status"].startswith("degenerate: chance-level predictor") and np.isnan(row["RA"])
    assert 0 < row["BA"] < 0.3


def test_encoder_classifier_leaves_the_callers_encoder_alone():
    from art_ssl.estimators import PyTorchEncoder, encoder_classifier
    from art_ssl.models import SmallCNN

    model = SmallCNN(1, (8,), 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clf = encoder_classifier(model, 3, input_shape=(1, 28, 28), device_type="cpu")  # frozen encoder
    assert all(p.requires_grad for p in model.parameters()) and model.training
    assert not any(p.requires_grad for p in clf.model.encoder.parameters())
    encoder = PyTorchEncoder(model, (1, 28, 28), device_type="cpu")
    encoder_classifier(encoder, 3, device_type="cpu")
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="nb_classes"):  # a failed call changes nothing either
        encoder_classifier(model, 1, input_shape=(1, 28, 28), device_type="cpu")
    with pytest.raises(ValueError, match="head"):
        encoder_classifier(model, 3, head="conv", input_shape=(1, 28, 28), device_type="cpu")
    assert all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    shared = encoder_classifier(model, 3, input_shape=(1, 28, 28), copy_encoder=False, device_type="cpu")
    assert shared.model.encoder is model  # opt-in: in place


def test_failed_rows_are_retried_and_replaced(tmp_path):
    path = tmp_path / "results.csv"
    store = ResultStore(path, ("cell_key",))
    store.append(
        [
            {"cell_key": "k1", "RA": float("nan"), "status": "error: out of memory"},
            {"cell_key": "k2", "RA": 0.2, "status": "degenerate: constant predictor"},
        ]
    )
    assert not store.has(cell_key="k1") and store.has(cell_key="k2")  # an error is retried, a degenerate cell is not
    store.append([{"cell_key": "k1", "RA": 0.4, "status": "ok"}])
    frame = pd.read_csv(path)
    assert sorted(frame.cell_key) == ["k1", "k2"] and frame.set_index("cell_key").loc["k1", "RA"] == 0.4


def test_folder_specs_load(tmp_path):
    """``folder:ROOT`` (it always failed with 'too many values to unpack'): one folder split 80/20, or train/test."""
    from PIL import Image

    from art_ssl.evaluation.sources import load_data_spec

    rng = np.random.default_rng(0)
    for root, parts in ((tmp_path / "flat", ("",)), (tmp_path / "split", ("train", "test"))):
        for part in parts:
            for name in ("cat", "dog"):
                (root / part / name).mkdir(parents=True)
                for i in range(5):
                    pixels = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
                    Image.fromarray(pixels).save(root / part / name / f"{i}.png")
    flat = load_data_spec(f"folder:{tmp_path / 'flat'}", size=8, channels=1)
    assert flat.x_train.shape == (8, 1, 8, 8) and len(flat.x_test) == 2 and flat.nb_classes == 2
    split = load_data_spec(f"folder:{tmp_path / 'split'}", size=8, channels=3, n_train=4)
    assert split.x_train.shape == (4, 3, 8, 8) and len(split.x_test) == 10 and sorted(set(split.y_train)) == [0, 1]


def test_rows_of_an_older_layout_are_kept_but_never_reused(tmp_path, fake_work):
    out = tmp_path / "results.csv"
    pd.DataFrame(
        [
            {
                "encoder": "simclr_r18",
                "task": "fashion-mnist-subset",
                "defence": "none",
                "attack": "pgd",
                "eps_255": 8.0,
                "seed": 0,
                "BA": 0.99,
                "RA": 0.99,
                "status": "ok",
            }
        ]
    ).to_csv(out, index=False)
    frame = run_grid(GridConfig(encoders=("simclr_r18",), **{**FAST, "attacks": ("pgd",)}), out, progress=False)
    assert fake_work["jobs"] == 1 and frame.RA.tolist() == [0.25]  # computed, not the old row's 0.99
    assert len(pd.read_csv(out)) == 2


def test_the_attackers_data_can_be_other_than_the_first_task_and_is_keyed_by_content():
    from art_ssl.evaluation.work import _Keys, _surrogate_images

    both = GridConfig(encoders=("simclr_r18",), **{**FAST, "tasks": ("fashion-mnist-subset", "digits")})
    digits = replace(both, tasks=("digits",))
    digits_attacked_from_fmnist = replace(digits, surrogate_data="fashion_mnist_subset")
    assert digits_attacked_from_fmnist.surrogate_data == "fashion-mnist-subset"  # spelt as tasks are
    # the same attacker's images as the grid whose first task is that data, not the digits the victims learn
    np.testing.assert_array_equal(
        _surrogate_images(digits_attacked_from_fmnist, "simclr_r18", 0), _surrogate_images(both, "simclr_r18", 0)
    )
    assert not np.array_equal(_surrogate_images(digits, "simclr_r18", 0), _surrogate_images(both, "simclr_r18", 0))

    def key(config):
        return _Keys(config).perturbation("simclr_r18", "ssp", 8.0, 0)

    assert key(digits_attacked_from_fmnist) == key(both)  # one perturbation, shared through the cache
    assert key(digits) != key(both)
    # naming the first task changes no key: results computed before the setting existed still resume
    assert key(replace(both, surrogate_data="fashion-mnist-subset")) == key(both)
    cell = {"encoder": "simclr_r18", "task": "digits", "defence": "none", "attack": "pgd", "eps_255": 8.0, "seed": 0}
    assert _Keys(replace(both, surrogate_data="fashion-mnist-subset")).annotate(cell) == _Keys(both).annotate(cell)


def test_a_committed_result_keeps_its_key(monkeypatch):
    """Settings added since a result was committed leave its key as it was (a rerun of its preset finds it instead
    of recomputing it): the first and last rows of a committed digits grid, keyed again from the preset."""
    import art_ssl
    from art_ssl.evaluation.work import _Keys
    from tests.conftest import evaluation_script

    frame = pd.read_csv(ROOT / "evaluations" / "results" / "defences_digits_3epochs_64.csv")
    monkeypatch.setattr(art_ssl, "__version__", frame.art_ssl_version.iloc[0])  # the key holds the version
    (config,) = evaluation_script("presets", monkeypatch).preset_grids("defences_digits_3epochs_64")
    keys = _Keys(config)
    for _, row in frame.iloc[[0, -1]].iterrows():
        cell = {k: row[k] for k in ("encoder", "task", "defence", "attack")}
        cell.update(eps_255=float(row.eps_255), seed=int(row.seed))
        assert keys.annotate(cell)["cell_key"] == row.cell_key, cell


def test_anneal_epochs_reach_the_encoder_fine_tuning_defences_and_are_keyed_only_when_set():
    from art_ssl.evaluation.registry import make_defence_trainer
    from art_ssl.evaluation.work import _Keys

    config = GridConfig(
        encoders=("simclr_r18",),
        **{**FAST, "defences": ("none", "trades"), "tasks": ("fashion-mnist-subset", "digits")},
    )
    config = replace(config, epochs=10, task_epochs=(("digits", 30),))
    annealed = replace(config, anneal_epochs=3)
    assert annealed.lr_milestones_for("digits", "trades") == (27,)  # the last 3 of each task's own epochs
    assert annealed.lr_milestones_for("fashion-mnist-subset", "trades") == (7,)
    assert annealed.lr_milestones_for("digits", "none") == () and config.lr_milestones_for("digits", "trades") == ()
    assert "anneal_epochs" not in _Keys(config).settings and _Keys(annealed).settings["anneal_epochs"] == 3
    cell = {"encoder": "simclr_r18", "task": "digits", "defence": "trades", "attack": "ssp", "eps_255": 8.0, "seed": 0}
    plain, stepped = _Keys(config).annotate(cell), _Keys(annealed).annotate(cell)
    assert plain["cell_key"] != stepped["cell_key"]  # another downstream model
    assert plain["perturbation_key"] == stepped["perturbation_key"]  # the same DAE, crafted once

    classifier = grid_module.build_victim(load_encoder_spec("simclr_r18", size=32), 10, seed=0)
    trainer = make_defence_trainer("trades", classifier, 30, lr_milestones=(27,))
    assert trainer.lr_milestones == (27,)
    with pytest.raises(ValueError, match="'zepad' takes no `lr_milestones`"):
        make_defence_trainer("zepad", classifier, 30, lr_milestones=(27,))
