"""
The regression suite of bad inputs (issue 13): every case is a wrong input to the API, a loader, a metric or the
command line; each must raise its exact error class (the CLI: exit status 2 with one ``error:`` line and no
traceback) with a message that names the parameter the user got wrong, before any expensive work.
Tiny data only: files of a few bytes, no training (work functions are replaced by tripwires).
"""

from __future__ import annotations

import gzip
import math
import pickle
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from art_ssl import metrics
from art_ssl.core.checks import check_images, check_labels
from art_ssl.data import (
    DatasetNotFoundError,
    Task,
    load_cifar10,
    load_digits,
    load_idx_dataset,
    load_image_folder,
    load_stl10,
    load_task,
    read_idx,
    subsample,
    to_float_nchw,
)
from art_ssl.estimators import PyTorchEncoder, encoder_classifier
from art_ssl.evaluation.grid import GridConfig, run_grid
from art_ssl.evaluation.registry import AttackSettings
from art_ssl.evaluation.sources import load_data_spec, load_encoder_spec
from art_ssl.evaluation.store import ResultStore
from art_ssl.models import SmallCNN
from tests.conftest import child_env

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    call: object  # files -> anything; must raise
    error: type
    match: str


def _idx(path: Path, array: np.ndarray, code: int = 0x08, dtype=np.uint8, gz: bool = False) -> None:
    data = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes() + array.astype(dtype).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _idx_root(
    root: Path,
    images: np.ndarray,
    labels: np.ndarray,
    image_code=0x08,
    image_dtype=np.uint8,
    label_code=0x08,
    label_dtype=np.uint8,
) -> Path:
    root.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        _idx(root / f"{prefix}-images-idx3-ubyte", images, image_code, image_dtype)
        _idx(root / f"{prefix}-labels-idx1-ubyte", labels, label_code, label_dtype)
    return root


def _cifar(root: Path, data, labels) -> Path:
    root.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(root / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels}, f)
    return root


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Small bad files, made once."""
    from PIL import Image

    t = tmp_path_factory.mktemp("bad")
    img = np.zeros((4, 28, 28), np.uint8)
    ten = np.arange(4) % 10
    f = {"tmp": t}
    f["idx_labels_200"] = _idx_root(t / "labels200", img, np.array([0, 1, 200, 3]))
    f["idx_float_1000"] = _idx_root(t / "float1000", np.full((4, 28, 28), 1000.0), ten, 0x0D, ">f4")
    f["idx_int16"] = _idx_root(t / "int16", img, ten, 0x0B, ">i2")
    f["idx_float_labels"] = _idx_root(
        t / "floatlabels", img, np.array([0.5, 1, 2, 3]), label_code=0x0D, label_dtype=">f4"
    )
    f["idx_mismatch"] = _idx_root(t / "mismatch", img, np.arange(3))
    (t / "magic").write_bytes(b"\x01\x02\x03\x04rest")
    (t / "short").write_bytes(b"\x00\x00")
    (t / "header").write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    (t / "ndim0").write_bytes(bytes([0, 0, 8, 0]))
    (t / "truncated").write_bytes(bytes([0, 0, 8, 1]) + np.array([10], ">u4").tobytes() + b"\x00" * 3)
    (t / "dtype").write_bytes(bytes([0, 0, 0x42, 1]) + np.array([1], ">u4").tobytes() + b"\x00")
    f["cifar_labels"] = _cifar(t / "cifar_labels", np.zeros((2, 3072), np.uint8), [0, 10])
    f["cifar_negative"] = _cifar(t / "cifar_negative", np.zeros((2, 3072), np.uint8), [-1, 3])
    f["cifar_float"] = _cifar(t / "cifar_float", np.zeros((2, 3072), np.float64), [0, 1])
    f["cifar_shape"] = _cifar(t / "cifar_shape", np.zeros((2, 100), np.uint8), [0, 1])
    code = t / "cifar_code"
    code.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (code / name).write_bytes(pickle.dumps(Path("/")))  # an object a CIFAR batch never holds
    f["cifar_code"] = code
    f["cifar_missing"] = t / "cifar_missing"
    f["cifar_missing"].mkdir()
    stl = t / "stl"
    stl.mkdir()
    (stl / "train_X.bin").write_bytes(np.zeros(2 * 3 * 96 * 96, np.uint8).tobytes())
    (stl / "train_y.bin").write_bytes(np.array([0, 11], np.uint8).tobytes())
    (stl / "test_X.bin").write_bytes(np.zeros(100, np.uint8).tobytes())
    f["stl"] = stl
    one = t / "one_class"
    (one / "42").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((8, 8), i * 40, np.uint8)).save(one / "42" / f"{i}.png")
    f["one_class"] = one
    (t / "no_classes").mkdir()
    f["no_classes"] = t / "no_classes"
    empty = t / "no_images"
    (empty / "a").mkdir(parents=True)
    (empty / "a" / "readme.txt").write_text("no image")
    f["no_images"] = empty
    sizes = t / "sizes"
    for c, side in (("a", 8), ("b", 9)):
        (sizes / c).mkdir(parents=True)
        Image.fromarray(np.zeros((side, side), np.uint8)).save(sizes / c / "x.png")
    f["sizes"] = sizes
    split = t / "split"
    for part, classes in (("train", ("a", "b")), ("test", ("a", "c"))):
        for c in classes:
            (split / part / c).mkdir(parents=True)
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(split / part / c / "x.png")
    f["split"] = split
    (t / "garbage.safetensors").write_bytes(b"\x00not a safetensors file")
    (t / "model.onnx").write_bytes(b"onnx")
    import torch

    torch.save({"w": torch.zeros(2)}, t / "pickled.pt")
    (t / "a_file").write_text("x")
    (t / "bad.csv").write_bytes(b"\xff\xfe\x00garbage")
    (t / "other.csv").write_text("a,b\n1,2\n")
    (t / "results_dir.csv").mkdir()
    return f


def grid(**kwargs):
    return GridConfig(**{"encoders": ("simclr_r18",), "attacks": ("pgd",), **kwargs})


def task(**kwargs):
    x = np.zeros((4, 1, 8, 8), np.float32)
    parts = {
        "name": "t",
        "x_train": x,
        "y_train": np.array([0, 1, 0, 1]),
        "x_test": x,
        "y_test": np.array([0, 1, 1, 0]),
        **kwargs,
    }
    return Task(**parts)


def settings(**kwargs):
    return grid(attack_settings=AttackSettings(**kwargs))


NAN, INF = math.nan, math.inf
LOGITS = np.eye(3)[[0, 1, 2, 0]]
Y = np.array([0, 1, 2, 0])

API_CASES = {
    "encoder-std-zero": Case(
        lambda f: PyTorchEncoder(nn.Flatten(), (1, 4, 4), preprocessing=(0.5, 0.0)),
        ValueError,
        "`preprocessing` .*std > 0",
    ),
    "encoder-std-nan": Case(
        lambda f: PyTorchEncoder(nn.Flatten(), (1, 4, 4), preprocessing=(0.5, float("nan"))),
        ValueError,
        "`preprocessing` .*std > 0",
    ),
    "encoder-std-negative-channel": Case(
        lambda f: PyTorchEncoder(nn.Flatten(), (3, 4, 4), preprocessing=((0.5,) * 3, (0.2, -0.2, 0.2))),
        ValueError,
        "`preprocessing` .*std > 0",
    ),
    # ---------------------------------------------------------------- GridConfig: every setting, before any load
    "grid-encoders-str": Case(lambda f: GridConfig(encoders="simclr_r18"), TypeError, "`encoders` must be a tuple"),
    "grid-encoders-int": Case(lambda f: GridConfig(encoders=(3,)), TypeError, "`encoders` must hold"),
    "grid-encoders-empty-name": Case(lambda f: GridConfig(encoders=("",)), TypeError, "`encoders` must hold"),
    "grid-encoders-unknown": Case(lambda f: grid(encoders=("nope",)), ValueError, "`encoders`: .*neither a zoo"),
    "grid-encoders-onnx": Case(
        lambda f: grid(encoders=(str(f["tmp"] / "model.onnx"),)), ValueError, "`encoders`: Unsupported encoder file"
    ),
    "grid-tasks-str": Case(lambda f: grid(tasks="digits"), TypeError, "`tasks` must be a tuple"),
    "grid-tasks-unknown": Case(lambda f: grid(tasks=("imagenet",)), ValueError, "`tasks`: Unknown dataset"),
    "grid-tasks-cifar-no-root": Case(lambda f: grid(tasks=("cifar10",)), ValueError, "`data` 'cifar10' needs a folder"),
    "grid-tasks-stl-no-root": Case(lambda f: grid(tasks=("stl10",)), ValueError, "`data` 'stl10' needs a folder"),
    "grid-tasks-folder-no-root": Case(lambda f: grid(tasks=("folder",)), ValueError, "`data` 'folder' needs"),
    "grid-tasks-missing-root": Case(
        lambda f: grid(tasks=("cifar10:/no/such/dir",)), ValueError, "`data` 'cifar10:/no/such/dir': folder"
    ),
    "grid-tasks-root-for-digits": Case(
        lambda f: grid(tasks=(f"digits:{f['tmp']}",)), ValueError, "`data` .*digits takes no folder"
    ),
    "grid-tasks-none": Case(lambda f: grid(tasks=(None,)), TypeError, "`tasks` must hold"),
    "grid-attacks-unknown": Case(lambda f: grid(attacks=("deepfool2",)), ValueError, "`attacks`: Unknown attack"),
    "grid-attacks-torchattacks-unknown": Case(
        lambda f: grid(attacks=("torchattacks:Nope",)), ValueError, "`attacks`: Unknown attack 'torchattacks:Nope'"
    ),
    "grid-attacks-torchattacks-base": Case(
        lambda f: grid(attacks=("torchattacks:Attack",)), ValueError, "`attacks`: Unknown attack 'torchattacks:Attack'"
    ),
    "grid-attacks-torchattacks-empty": Case(
        lambda f: grid(attacks=("torchattacks:",)), ValueError, "`attacks`: Unknown attack"
    ),
    "grid-attacks-torchattacks-module": Case(
        lambda f: grid(attacks=("torchattacks:attack",)), ValueError, "`attacks`: Unknown attack"
    ),
    "grid-attacks-case": Case(lambda f: grid(attacks=("PGD",)), ValueError, "`attacks`: Unknown attack 'PGD'"),
    "grid-attacks-list-of-int": Case(lambda f: grid(attacks=(1,)), TypeError, "`attacks` must hold"),
    "grid-attacks-transfer-whitebox": Case(
        lambda f: grid(attacks=("transfer:pgd",)), ValueError, "`attacks`: Unknown attack 'transfer:pgd'"
    ),
    "grid-attacks-adaptive-unknown": Case(
        lambda f: grid(attacks=("adaptive:nope",)), ValueError, "`attacks`: Unknown attack 'adaptive:nope'"
    ),
    "grid-transfer-encoder-itself": Case(
        lambda f: grid(attacks=("transfer:ssp",), transfer_encoder="simclr_r18"),
        ValueError,
        "`transfer_encoder` 'simclr_r18' is the audited encoder itself",
    ),
    "grid-transfer-encoder-missing": Case(
        lambda f: grid(attacks=("transfer:ssp",), transfer_encoder="/no/such.safetensors"),
        ValueError,
        "`transfer_encoder`",
    ),
    "grid-task-epochs-other-task": Case(
        lambda f: grid(task_epochs=("digits=10",)), ValueError, "`task_epochs` names 'digits', which is not in"
    ),
    "grid-task-epochs-zero": Case(
        lambda f: grid(tasks=("digits",), task_epochs=("digits=0",)), ValueError, "`task_epochs` must be >= 1"
    ),
    "grid-task-epochs-text": Case(
        lambda f: grid(tasks=("digits",), task_epochs=("digits=ten",)), TypeError, "`task_epochs` must be an int"
    ),
    "grid-task-epochs-no-equals": Case(
        lambda f: grid(tasks=("digits",), task_epochs=("digits",)), ValueError, "`task_epochs` entries are NAME=VALUE"
    ),
    "grid-task-epochs-twice": Case(
        lambda f: grid(tasks=("digits",), task_epochs=("digits=2", "digits=3")), ValueError, "names .digits. twice"
    ),
    "grid-attack-eps-zero": Case(
        lambda f: grid(attack_eps=("pgd=0",)), ValueError, "`attack_eps` budgets must be in \\(0, 255\\]"
    ),
    "grid-attack-eps-nan": Case(
        lambda f: grid(attack_eps={"pgd": float("nan")}), ValueError, "`attack_eps` budgets must be in"
    ),
    "grid-attack-eps-text": Case(
        lambda f: grid(attack_eps=("pgd=two",)), ValueError, "`attack_eps` budgets are numbers"
    ),
    "grid-attack-eps-other-attack": Case(
        lambda f: grid(attack_eps=("ssp=4",)), ValueError, "`attack_eps` names 'ssp', which is not in"
    ),
    "grid-attack-eps-backdoor": Case(
        lambda f: grid(attacks=("badencoder",), attack_eps=("badencoder=4",)), ValueError, "takes no budget"
    ),
    "grid-attack-eps-str": Case(lambda f: grid(attack_eps="pgd=2"), TypeError, "`attack_eps` must be a dict"),
    "grid-defences-unknown": Case(lambda f: grid(defences=("magic",)), ValueError, "`defences`: Unknown defence"),
    "grid-defences-str": Case(lambda f: grid(defences="none"), TypeError, "`defences` must be a tuple"),
    "grid-eps-zero": Case(lambda f: grid(eps=(0.0,)), ValueError, "`eps` must be budgets in \\(0, 255\\]"),
    "grid-eps-negative": Case(lambda f: grid(eps=(-4.0,)), ValueError, "`eps` must be budgets"),
    "grid-eps-too-big": Case(lambda f: grid(eps=(256.0,)), ValueError, "`eps` must be budgets"),
    "grid-eps-nan": Case(lambda f: grid(eps=(NAN,)), ValueError, "`eps` must be budgets"),
    "grid-eps-inf": Case(lambda f: grid(eps=(INF,)), ValueError, "`eps` must be budgets"),
    "grid-eps-str": Case(lambda f: grid(eps=("4",)), TypeError, "`eps` must hold numbers"),
    "grid-eps-bool": Case(lambda f: grid(eps=(True,)), TypeError, "`eps` must hold numbers"),
    "grid-eps-scalar": Case(lambda f: grid(eps=4.0), TypeError, "`eps` must be a tuple"),
    "grid-seeds-negative": Case(lambda f: grid(seeds=(-1,)), ValueError, "`seeds` must be non-negative"),
    "grid-seeds-float": Case(lambda f: grid(seeds=(1.5,)), TypeError, "`seeds` must hold ints"),
    "grid-seeds-str": Case(lambda f: grid(seeds=("0",)), TypeError, "`seeds` must hold ints"),
    "grid-seeds-bool": Case(lambda f: grid(seeds=(False,)), TypeError, "`seeds` must hold ints"),
    "grid-size-zero": Case(lambda f: grid(size=0), ValueError, "`size` must be >= 8"),
    "grid-size-negative": Case(lambda f: grid(size=-64), ValueError, "`size` must be >= 8"),
    "grid-size-tiny": Case(lambda f: grid(size=7), ValueError, "`size` must be >= 8"),
    "grid-size-float": Case(lambda f: grid(size=64.0), TypeError, "`size` must be an int"),
    "grid-size-bool": Case(lambda f: grid(size=True), TypeError, "`size` must be an int"),
    "grid-n-train-zero": Case(lambda f: grid(n_train=0), ValueError, "`n_train` must be >= 1"),
    "grid-n-train-negative": Case(lambda f: grid(n_train=-5), ValueError, "`n_train` must be >= 1"),
    "grid-n-train-float": Case(lambda f: grid(n_train=2.5), TypeError, "`n_train` must be an int"),
    "grid-n-train-str": Case(lambda f: grid(n_train="100"), TypeError, "`n_train` must be an int"),
    "grid-n-test-zero": Case(lambda f: grid(n_test=0), ValueError, "`n_test` must be >= 1"),
    "grid-n-test-negative": Case(lambda f: grid(n_test=-1), ValueError, "`n_test` must be >= 1"),
    "grid-epochs-zero": Case(lambda f: grid(epochs=0), ValueError, "`epochs` must be >= 1"),
    "grid-epochs-negative": Case(lambda f: grid(epochs=-2), ValueError, "`epochs` must be >= 1"),
    "grid-epochs-float": Case(lambda f: grid(epochs=1.5), TypeError, "`epochs` must be an int"),
    "grid-batch-size-zero": Case(lambda f: grid(batch_size=0), ValueError, "`batch_size` must be >= 1"),
    "grid-batch-size-none": Case(lambda f: grid(batch_size=None), TypeError, "`batch_size` must be an int"),
    "grid-pgd-steps-zero": Case(lambda f: grid(pgd_steps=0), ValueError, "`pgd_steps` must be >= 1"),
    "grid-whitebox-n-negative": Case(lambda f: grid(whitebox_n=-5), ValueError, "`whitebox_n` must be >= 1"),
    "grid-whitebox-n-zero": Case(lambda f: grid(whitebox_n=0), ValueError, "`whitebox_n` must be >= 1"),
    "grid-surrogate-n-zero": Case(lambda f: grid(surrogate_n=0), ValueError, "`surrogate_n` must be >= 1"),
    "grid-surrogate-n-uap": Case(
        lambda f: grid(attacks=("uapepgd",), surrogate_n=5), ValueError, "`surrogate_n` must be >= 10 for 'uapepgd'"
    ),
    "grid-surrogate-n-art-uap": Case(
        lambda f: grid(attacks=("art_uap",), surrogate_n=9), ValueError, "`surrogate_n` must be >= 10"
    ),
    "grid-surrogate-data-unknown": Case(
        lambda f: grid(surrogate_data="imagenet"), ValueError, "`surrogate_data`: Unknown dataset 'imagenet'"
    ),
    "grid-surrogate-data-no-folder": Case(
        lambda f: grid(surrogate_data="cifar10"), ValueError, "`surrogate_data` 'cifar10' needs a folder"
    ),
    "grid-anneal-epochs-too-many": Case(
        lambda f: grid(epochs=10, anneal_epochs=10), ValueError, r"`anneal_epochs` must be fewer .*\(10 here"
    ),
    "grid-anneal-epochs-vs-task-epochs": Case(
        lambda f: grid(tasks=("digits", "fashion-mnist-subset"), epochs=10, task_epochs=("digits=3",), anneal_epochs=5),
        ValueError,
        r"`anneal_epochs` must be fewer .*\(3 here",
    ),
    "grid-anneal-epochs-negative": Case(lambda f: grid(anneal_epochs=-1), ValueError, "`anneal_epochs` must be >= 0"),
    "grid-anneal-epochs-float": Case(lambda f: grid(anneal_epochs=2.0), TypeError, "`anneal_epochs` must be an int"),
    "grid-surrogate-data-tuple": Case(
        lambda f: grid(surrogate_data=("digits",)), TypeError, "`surrogate_data` must be a data spec"
    ),
    "grid-attack-settings-none": Case(
        lambda f: grid(attack_settings=None), TypeError, "`attack_settings` must be an AttackSettings"
    ),
    "grid-attack-settings-dict": Case(
        lambda f: grid(attack_settings={"sign_epochs": 1}), TypeError, "`attack_settings` must be an AttackSettings"
    ),
    "grid-sign-step-zero": Case(lambda f: settings(sign_step=0.0), ValueError, "`attack_settings.sign_step`"),
    "grid-sign-step-negative": Case(lambda f: settings(sign_step=-1e-3), ValueError, "`attack_settings.sign_step`"),
    "grid-sign-step-nan": Case(lambda f: settings(sign_step=NAN), ValueError, "`attack_settings.sign_step`"),
    "grid-sign-step-str": Case(lambda f: settings(sign_step="0.1"), ValueError, "`attack_settings.sign_step`"),
    "grid-sign-epochs-zero": Case(
        lambda f: settings(sign_epochs=0), ValueError, "`attack_settings.sign_epochs` must be >= 1"
    ),
    "grid-gen-epochs-zero": Case(lambda f: settings(gen_epochs=0), ValueError, "`attack_settings.gen_epochs`"),
    "grid-gen-ngf-zero": Case(lambda f: settings(gen_ngf=0), ValueError, "`attack_settings.gen_ngf`"),
    "grid-gen-nz-batch-zero": Case(lambda f: settings(gen_nz_batch=0), ValueError, "`attack_settings.gen_nz_batch`"),
    "grid-uap-iter-zero": Case(lambda f: settings(uap_iter=0), ValueError, "`attack_settings.uap_iter`"),
    "grid-settings-surrogate-n": Case(lambda f: settings(surrogate_n=-1), ValueError, "`attack_settings.surrogate_n`"),
    "grid-settings-seed": Case(lambda f: settings(seed=-1), ValueError, "`attack_settings.seed` must be >= 0"),
    "grid-settings-float-epochs": Case(lambda f: settings(sign_epochs=1.0), TypeError, "`attack_settings.sign_epochs`"),
    "grid-device-tpu": Case(lambda f: grid(device_type="tpu"), ValueError, "`device_type` must be"),
    "grid-device-cuda": Case(lambda f: grid(device_type="cuda"), ValueError, "`device_type` must be"),
    "grid-verbose-str": Case(lambda f: grid(verbose="yes"), TypeError, "`verbose` must be a bool"),
    # ---------------------------------------------------------------- run_grid
    "run-backend": Case(lambda f: run_grid(grid(), f["tmp"] / "r.csv", backend="dask"), ValueError, "`backend`"),
    "run-config-dict": Case(
        lambda f: run_grid({"encoders": ("simclr_r18",)}, f["tmp"] / "r.csv"),
        TypeError,
        "`config` must be a GridConfig",
    ),
    "run-no-cells": Case(lambda f: run_grid(GridConfig(encoders=()), f["tmp"] / "r.csv"), ValueError, "no cells"),
    "run-no-cells-backdoor": Case(
        lambda f: run_grid(grid(attacks=("badencoder",)), f["tmp"] / "r.csv"), ValueError, "no cells"
    ),
    "run-out-is-folder": Case(lambda f: run_grid(grid(), f["tmp"]), ValueError, "`out` '.*' is a folder"),
    "run-out-under-file": Case(
        lambda f: run_grid(grid(), f["tmp"] / "a_file" / "r.csv"), ValueError, "out '.*a_file' is a file"
    ),
    "run-perturbation-dir-file": Case(
        lambda f: run_grid(grid(), f["tmp"] / "r2.csv", perturbation_dir=f["tmp"] / "a_file"),
        ValueError,
        "perturbation_dir '.*' is a file",
    ),
    "run-unreadable-results": Case(lambda f: run_grid(grid(), f["tmp"] / "bad.csv"), ValueError, "not a readable CSV"),
    "run-foreign-results": Case(
        lambda f: run_grid(grid(), f["tmp"] / "other.csv"), ValueError, "lacks the key columns"
    ),
    "run-folder-one-class": Case(
        lambda f: run_grid(grid(tasks=(f"folder:{f['one_class']}",), size=8), f["tmp"] / "r3.csv"),
        ValueError,
        "`tasks` 'folder:.*': Task .* has 1 class",
    ),
    "run-encoder-garbage": Case(
        lambda f: run_grid(grid(encoders=(str(f["tmp"] / "garbage.safetensors"),)), f["tmp"] / "r4.csv"),
        ValueError,
        "`encoders`: .*not a valid safetensors",
    ),
    "run-cifar-missing-files": Case(
        lambda f: run_grid(grid(tasks=(f"cifar10:{f['cifar_missing']}",)), f["tmp"] / "r5.csv"),
        DatasetNotFoundError,
        "`tasks` 'cifar10:.*': CIFAR-10 batch files",
    ),
    # ---------------------------------------------------------------- results store
    "store-unreadable": Case(lambda f: ResultStore(f["tmp"] / "bad.csv", ("a",)), ValueError, "not a readable CSV"),
    "store-missing-key": Case(
        lambda f: ResultStore(f["tmp"] / "other.csv", ("cell_key",)),
        ValueError,
        "lacks the key columns \\['cell_key'\\]",
    ),
    "store-is-folder": Case(lambda f: ResultStore(f["tmp"] / "results_dir.csv", ("a",)), ValueError, "is a folder"),
    # ---------------------------------------------------------------- data specs and encoder files
    "spec-empty": Case(lambda f: load_data_spec(""), ValueError, "`data` must be one of"),
    "spec-none": Case(lambda f: load_data_spec(None), ValueError, "`data` must be one of"),
    "spec-unknown": Case(lambda f: load_data_spec("imagenet-21k"), ValueError, "Unknown dataset"),
    "spec-stl-no-root": Case(lambda f: load_data_spec("stl10"), ValueError, "`data` 'stl10' needs a folder"),
    "spec-folder-one-class": Case(lambda f: load_data_spec(f"folder:{f['one_class']}", size=8), ValueError, "1 class"),
    "spec-folder-no-classes": Case(
        lambda f: load_data_spec(f"folder:{f['no_classes']}", size=8), ValueError, "`root` .* has no class sub-folders"
    ),
    "spec-folder-split-classes": Case(
        lambda f: load_data_spec(f"folder:{f['split']}", size=8), ValueError, "`data` folder .* same class folders"
    ),
    "spec-cifar-labels": Case(
        lambda f: load_data_spec(f"cifar10:{f['cifar_labels']}", size=8),
        ValueError,
        "CIFAR-10 labels lie in \\[0, 10\\)",
    ),
    "spec-n-train-negative": Case(lambda f: load_data_spec("digits", n_train=-5), ValueError, "`n_train`"),
    "encoder-missing": Case(lambda f: load_encoder_spec("no_such_encoder"), ValueError, "neither a zoo encoder"),
    "encoder-garbage": Case(
        lambda f: load_encoder_spec(str(f["tmp"] / "garbage.safetensors")), ValueError, "not a valid safetensors"
    ),
    "encoder-pickle-no-backbone": Case(
        lambda f: load_encoder_spec(str(f["tmp"] / "pickled.pt")),
        ValueError,
        "No encoder backbone recognised.*key_prefix",
    ),
    "encoder-onnx": Case(
        lambda f: load_encoder_spec(str(f["tmp"] / "model.onnx")), ValueError, "Unsupported encoder file"
    ),
    # ---------------------------------------------------------------- loaders
    "task-name": Case(lambda f: load_task("imagenet"), ValueError, "`name` must be one of"),
    "task-name-none": Case(lambda f: load_task(None), ValueError, "`name` must be one of"),
    "task-n-train-negative": Case(lambda f: load_task("digits", n_train=-5), ValueError, "`n_train` must be"),
    "task-n-train-zero": Case(lambda f: load_task("digits", n_train=0), ValueError, "`n_train` must be"),
    "task-n-train-float": Case(lambda f: load_task("digits", n_train=2.5), TypeError, "`n_train` must be"),
    "task-n-test-negative": Case(lambda f: load_task("digits", n_test=-1), ValueError, "`n_test` must be"),
    "task-n-test-bool": Case(lambda f: load_task("digits", n_test=True), TypeError, "`n_test` must be"),
    "task-seed-negative": Case(lambda f: load_task("digits", seed=-1), ValueError, "`seed` must be"),
    "task-size-zero": Case(lambda f: load_task("digits", size=0), ValueError, "`size` must be"),
    "task-size-triple": Case(lambda f: load_task("digits", size=(8, 8, 8)), ValueError, "`size` must be"),
    "task-size-float": Case(lambda f: load_task("digits", size=8.5), ValueError, "`size` must be"),
    "task-too-few-for-classes": Case(
        lambda f: load_task("digits", size=8, n_train=5), ValueError, "`n_train`=5 may be too few"
    ),
    "task-fmnist-missing": Case(
        lambda f: load_task("fashion_mnist", root=f["tmp"] / "nope"), DatasetNotFoundError, "Fashion-MNIST not found"
    ),
    "task-kmnist-no-root": Case(lambda f: load_task("kmnist"), DatasetNotFoundError, "pass `root=`"),
    "task-cifar-missing": Case(
        lambda f: load_task("cifar10", root=f["cifar_missing"]), DatasetNotFoundError, "batch files"
    ),
    "digits-split": Case(lambda f: load_digits("val"), ValueError, "`split` must be one of"),
    "digits-test-fraction": Case(lambda f: load_digits(test_fraction=1.5), ValueError, "`test_fraction`"),
    "idx-bad-magic": Case(lambda f: read_idx(f["tmp"] / "magic"), ValueError, "bad magic number"),
    "idx-too-short": Case(lambda f: read_idx(f["tmp"] / "short"), ValueError, "bad magic number"),
    "idx-ndim-zero": Case(lambda f: read_idx(f["tmp"] / "ndim0"), ValueError, "bad magic number"),
    "idx-bad-dtype": Case(lambda f: read_idx(f["tmp"] / "dtype"), ValueError, "bad magic number"),
    "idx-truncated-header": Case(lambda f: read_idx(f["tmp"] / "header"), ValueError, "truncated: its header"),
    "idx-truncated-data": Case(lambda f: read_idx(f["tmp"] / "truncated"), ValueError, "truncated or corrupt"),
    "idx-labels-200": Case(
        lambda f: load_idx_dataset(f["idx_labels_200"]),
        ValueError,
        "IDX labels .* must lie in \\[0, 10\\), got \\[0, 200\\]",
    ),
    "idx-float-images-1000": Case(
        lambda f: load_idx_dataset(f["idx_float_1000"]), ValueError, "float IDX images must lie in \\[0, 1\\]"
    ),
    "idx-int16-images": Case(lambda f: load_idx_dataset(f["idx_int16"]), ValueError, "IDX images .* must be uint8"),
    "idx-float-labels": Case(
        lambda f: load_idx_dataset(f["idx_float_labels"]), ValueError, "IDX labels .* must be integers"
    ),
    "idx-count-mismatch": Case(lambda f: load_idx_dataset(f["idx_mismatch"]), ValueError, "IDX files .* disagree"),
    "idx-split": Case(lambda f: load_idx_dataset(f["idx_labels_200"], split="val"), ValueError, "`split`"),
    "idx-missing-files": Case(lambda f: load_idx_dataset(f["no_classes"]), DatasetNotFoundError, "not found in"),
    "cifar-labels-10": Case(lambda f: load_cifar10(root=f["cifar_labels"]), ValueError, "labels in \\[0, 10\\]"),
    "cifar-labels-negative": Case(
        lambda f: load_cifar10(root=f["cifar_negative"]), ValueError, "CIFAR-10 labels lie in"
    ),
    "cifar-float-data": Case(lambda f: load_cifar10(root=f["cifar_float"]), ValueError, "dtype float64"),
    "cifar-shape": Case(lambda f: load_cifar10(root=f["cifar_shape"]), ValueError, "expected \\(N, 3072\\)"),
    "cifar-code": Case(lambda f: load_cifar10(root=f["cifar_code"]), ValueError, "not a CIFAR-10 python batch"),
    "cifar-split": Case(lambda f: load_cifar10("val", root=f["cifar_labels"]), ValueError, "`split`"),
    "stl-labels": Case(lambda f: load_stl10(root=f["stl"]), ValueError, "one label in 1..10"),
    "stl-size": Case(lambda f: load_stl10("test", root=f["stl"]), ValueError, "whole number of 3x96x96"),
    "stl-split": Case(lambda f: load_stl10("val", root=f["stl"]), ValueError, "`split`"),
    "stl-missing": Case(lambda f: load_stl10(root=f["tmp"] / "nope"), DatasetNotFoundError, "STL-10 not found"),
    "folder-mode": Case(lambda f: load_image_folder(f["one_class"], mode="CMYK"), ValueError, "`mode`"),
    "folder-no-images": Case(lambda f: load_image_folder(f["no_images"]), ValueError, "`root` .* holds no images"),
    "folder-sizes": Case(lambda f: load_image_folder(f["sizes"]), ValueError, "different sizes.*pass `size=`"),
    "folder-missing": Case(lambda f: load_image_folder(f["tmp"] / "nope"), DatasetNotFoundError, "Image folder"),
    "float-images-above-1": Case(
        lambda f: to_float_nchw(np.full((2, 8, 8), 255.0)),
        ValueError,
        "`images` of dtype float64 must hold finite pixels in \\[0, 1\\]",
    ),
    "float-images-negative": Case(
        lambda f: to_float_nchw(np.full((2, 8, 8), -0.5, np.float32)), ValueError, "`images` .* in \\[0, 1\\]"
    ),
    "float-images-nan": Case(
        lambda f: to_float_nchw(np.full((2, 8, 8), NAN, np.float32)),
        ValueError,
        "`images` .* must hold finite pixels, got NaN",
    ),
    "int32-images": Case(lambda f: to_float_nchw(np.zeros((2, 8, 8), np.int32)), ValueError, "`images` must be uint8"),
    "images-2d": Case(lambda f: to_float_nchw(np.zeros((8, 8), np.uint8)), ValueError, "`images` must be 3-D"),
    "subsample-negative": Case(lambda f: subsample(np.zeros(4), np.arange(4), -1), ValueError, "`n` must be"),
    "subsample-bool": Case(lambda f: subsample(np.zeros(4), np.arange(4), True), TypeError, "`n` must be"),
    # ---------------------------------------------------------------- Task: degenerate tasks are refused
    "task-all-labelled-42": Case(lambda f: task(y_train=np.full(4, 42), y_test=np.full(4, 42)), ValueError, "1 class"),
    "task-labels-0-and-42": Case(
        lambda f: task(y_train=np.array([0, 42, 0, 42]), y_test=np.array([0, 42, 0, 0])),
        ValueError,
        "classes .* have no training image",
    ),
    "task-negative-label": Case(
        lambda f: task(y_train=np.array([0, 1, -1, 1])), ValueError, "`y_train` holds negative labels"
    ),
    "task-test-label-outside": Case(
        lambda f: task(y_test=np.array([0, 1, 5, 1])), ValueError, "test labels up to 5 lie outside"
    ),
    "task-float-labels": Case(
        lambda f: task(y_train=np.array([0.0, 1.0, 0.0, 1.0])), ValueError, "`y_train` must be 4 integer labels"
    ),
    "task-label-count": Case(lambda f: task(y_test=np.array([0, 1])), ValueError, "`y_test` must be 4 integer"),
    "task-pixels-255": Case(
        lambda f: task(x_test=np.full((4, 1, 8, 8), 255.0, np.float32)),
        ValueError,
        "`x_test` must hold finite pixels in \\[0, 1\\]",
    ),
    "task-pixels-nan": Case(
        lambda f: task(x_train=np.full((4, 1, 8, 8), NAN, np.float32)),
        ValueError,
        "`x_train` must hold finite pixels, got NaN",
    ),
    "task-uint8": Case(
        lambda f: task(x_train=np.zeros((4, 1, 8, 8), np.uint8)), ValueError, "`x_train` must be a float array"
    ),
    "task-3d": Case(
        lambda f: task(x_train=np.zeros((4, 8, 8), np.float32)),
        ValueError,
        "`x_train` must be a float array \\(N, C, H, W\\)",
    ),
    "task-empty": Case(
        lambda f: task(x_test=np.zeros((0, 1, 8, 8), np.float32), y_test=np.zeros(0, int)),
        ValueError,
        "`x_test` is empty",
    ),
    "task-shape-mismatch": Case(
        lambda f: task(x_test=np.zeros((4, 3, 8, 8), np.float32)), ValueError, "differ in shape"
    ),
    # ---------------------------------------------------------------- metrics
    "metric-nan-logits": Case(
        lambda f: metrics.accuracy(np.full((4, 3), NAN), Y), ValueError, "`y_pred` holds NaN or infinite scores"
    ),
    "metric-inf-logits": Case(
        lambda f: metrics.benign_accuracy(np.array([[INF, 0.0]] * 4), Y), ValueError, "`y_pred` holds NaN"
    ),
    "metric-1d-scores": Case(
        lambda f: metrics.accuracy(np.array([0.1, 0.9, 0.3, 0.2]), Y),
        ValueError,
        "`y_pred` 1-D values must be integer class labels",
    ),
    "metric-nan-labels": Case(
        lambda f: metrics.robust_accuracy(np.array([0.0, NAN, 1.0, 2.0]), Y), ValueError, "`y_pred` 1-D values"
    ),
    "metric-one-column": Case(lambda f: metrics.accuracy(np.zeros((4, 1)), Y), ValueError, "need C >= 2"),
    "metric-3d": Case(lambda f: metrics.accuracy(np.zeros((4, 3, 1)), Y), ValueError, "`y_pred` must be labels"),
    "metric-length": Case(
        lambda f: metrics.accuracy(LOGITS[:3], Y), ValueError, "`y_pred` and `y_true` must hold as many"
    ),
    "metric-empty": Case(
        lambda f: metrics.accuracy(np.zeros(0, int), np.zeros(0, int)), ValueError, "`y_pred` is empty"
    ),
    "metric-negative-label": Case(
        lambda f: metrics.accuracy(Y, np.array([0, -1, 2, 0])), ValueError, "`y_true` holds negative"
    ),
    "metric-strings": Case(
        lambda f: metrics.accuracy(np.array(["a", "b"]), np.array([0, 1])), ValueError, "`y_pred` must be numeric"
    ),
    "metric-bool": Case(
        lambda f: metrics.accuracy(np.array([True, False]), np.array([0, 1])),
        ValueError,
        "`y_pred` must be integer class labels",
    ),
    "metric-true-scores-nan": Case(
        lambda f: metrics.accuracy(Y, np.full((4, 3), NAN)), ValueError, "`y_true` holds NaN"
    ),
    "metric-fooling-length": Case(lambda f: metrics.fooling_rate(Y, Y[:2]), ValueError, "`y_pred_clean` and"),
    "metric-fooling-nan": Case(
        lambda f: metrics.fooling_rate(LOGITS, np.full((4, 3), NAN)), ValueError, "`y_pred_adv` holds NaN"
    ),
    "metric-error-rate-nan": Case(lambda f: metrics.error_rate(np.full((4, 3), NAN), Y), ValueError, "`y_pred`"),
    "metric-asr-target-negative": Case(
        lambda f: metrics.attack_success_rate(Y, -1, Y), ValueError, "`target` must be a class label"
    ),
    "metric-asr-target-float": Case(lambda f: metrics.attack_success_rate(Y, 1.5, Y), ValueError, "`target`"),
    "metric-asr-no-y-true": Case(lambda f: metrics.attack_success_rate(Y, 1), ValueError, "`y_true` is required"),
    "metric-asr-nan": Case(
        lambda f: metrics.attack_success_rate(np.full((4, 3), NAN), 1, Y), ValueError, "`y_pred` holds NaN"
    ),
    "metric-asr-only-target": Case(
        lambda f: metrics.attack_success_rate(Y, 0, np.zeros(4, int)), ValueError, "No samples left"
    ),
    "metric-auroc-nan": Case(
        lambda f: metrics.detection_auroc(np.array([0.1, NAN]), np.array([0, 1])), ValueError, "`scores` holds NaN"
    ),
    "metric-auroc-one-class": Case(
        lambda f: metrics.detection_auroc(np.array([0.1, 0.2]), np.array([1, 1])),
        ValueError,
        "`is_adv_true` must contain both",
    ),
    "metric-auroc-length": Case(
        lambda f: metrics.detection_auroc(np.array([0.1]), np.array([0, 1])), ValueError, "`scores` and `is_adv_true`"
    ),
    "metric-detection-length": Case(
        lambda f: metrics.detection_accuracy(np.array([1]), np.array([0, 1])),
        ValueError,
        "`is_adv_pred` and `is_adv_true`",
    ),
    # ---------------------------------------------------------------- input checks shared by attacks and trainers
    "images-list": Case(lambda f: check_images([[0.0]], "x_train"), TypeError, "`x_train` must be a numpy array"),
    "images-uint8": Case(
        lambda f: check_images(np.zeros((2, 1, 4, 4), np.uint8), "x"), TypeError, "`x` must hold floats.*scale uint8"
    ),
    "images-empty": Case(
        lambda f: check_images(np.zeros((0, 1, 4, 4), np.float32), "x_test"), ValueError, "`x_test` is empty"
    ),
    "images-shape": Case(
        lambda f: check_images(np.zeros((2, 3, 4, 4), np.float32), "x", (1, 4, 4)),
        ValueError,
        "`x` must have shape \\(N, 1, 4, 4\\)",
    ),
    "images-nan": Case(
        lambda f: check_images(np.full((2, 1, 4, 4), NAN, np.float32), "x"), ValueError, "`x` contains NaN"
    ),
    "images-range": Case(
        lambda f: check_images(np.full((2, 1, 4, 4), 255, np.float32), "x", None, (0, 1)),
        ValueError,
        "`x` has values in \\[255, 255\\], outside clip_values",
    ),
    "labels-list": Case(lambda f: check_labels([0, 1], 2, "y_train"), TypeError, "`y_train` must be a numpy array"),
    "labels-count": Case(lambda f: check_labels(np.arange(3), 2, "y"), ValueError, "`y` must have 2 labels"),
    "labels-range": Case(
        lambda f: check_labels(np.array([0, 10]), 2, "y", 10), ValueError, "`y` labels must lie in \\[0, 10\\)"
    ),
    "labels-negative": Case(lambda f: check_labels(np.array([0, -1]), 2, "y"), ValueError, "`y` labels must lie"),
    "labels-float": Case(lambda f: check_labels(np.array([0.5, 1.0]), 2, "y"), TypeError, "`y` must hold integer"),
    "labels-bool": Case(lambda f: check_labels(np.array([True, False]), 2, "y"), TypeError, "`y` must hold integer"),
    "labels-onehot-nan": Case(
        lambda f: check_labels(np.full((2, 3), NAN), 2, "y"), ValueError, "`y` one-hot/probabilities hold NaN"
    ),
    "labels-onehot-one-column": Case(lambda f: check_labels(np.ones((2, 1)), 2, "y"), ValueError, "need C >= 2"),
    # ---------------------------------------------------------------- encoder_classifier
    "clf-nb-classes-1": Case(
        lambda f: encoder_classifier(SmallCNN(1, (8,)), 1, input_shape=(1, 8, 8)),
        ValueError,
        "`nb_classes` must be an int >= 2",
    ),
    "clf-nb-classes-0": Case(
        lambda f: encoder_classifier(SmallCNN(1, (8,)), 0, input_shape=(1, 8, 8)), ValueError, "`nb_classes`"
    ),
    "clf-nb-classes-float": Case(
        lambda f: encoder_classifier(SmallCNN(1, (8,)), 2.5, input_shape=(1, 8, 8)), ValueError, "`nb_classes`"
    ),
    "clf-nb-classes-bool": Case(
        lambda f: encoder_classifier(SmallCNN(1, (8,)), True, input_shape=(1, 8, 8)), ValueError, "`nb_classes`"
    ),
    "clf-head-name": Case(
        lambda f: encoder_classifier(SmallCNN(1, (8,)), 3, head="conv", input_shape=(1, 8, 8)),
        ValueError,
        "`head` must be one of",
    ),
    "clf-head-int": Case(
        lambda f: encoder_classifier(SmallCNN(1, (8,)), 3, head=3, input_shape=(1, 8, 8)), TypeError, "`head` must be"
    ),
    "clf-lr-zero": Case(
        lambda f: encoder_classifier(SmallCNN(1, (8,)), 3, learning_rate=0, input_shape=(1, 8, 8)),
        ValueError,
        "`learning_rate` must be",
    ),
    "clf-lr-nan": Case(
        lambda f: encoder_classifier(SmallCNN(1, (8,)), 3, learning_rate=NAN, input_shape=(1, 8, 8)),
        ValueError,
        "`learning_rate` must be",
    ),
    "clf-freeze-str": Case(
        lambda f: encoder_classifier(SmallCNN(1, (8,)), 3, freeze_encoder="yes", input_shape=(1, 8, 8)),
        TypeError,
        "`freeze_encoder`",
    ),
    "clf-copy-str": Case(
        lambda f: encoder_classifier(SmallCNN(1, (8,)), 3, copy_encoder="no", input_shape=(1, 8, 8)),
        TypeError,
        "`copy_encoder`",
    ),
    "clf-encoder-str": Case(lambda f: encoder_classifier("resnet", 3), TypeError, "`encoder` must be an nn.Module"),
    "clf-no-input-shape": Case(lambda f: encoder_classifier(SmallCNN(1, (8,)), 3), ValueError, "`input_shape`"),
    "clf-bad-input-shape": Case(
        lambda f: encoder_classifier(SmallCNN(1, (8,)), 3, input_shape=(1, 0, 8)), ValueError, "`input_shape` must be"
    ),
    "clf-head-not-module": Case(
        lambda f: encoder_classifier(nn.Flatten(), 3, head=[1], input_shape=(1, 8, 8)), TypeError, "`head` must be"
    ),
}


def test_the_table_is_large_enough():
    assert len(API_CASES) + len(CLI_CASES) + len(SUBPROCESS_CASES) >= 200


@pytest.mark.parametrize("name", sorted(API_CASES))
def test_api_bad_input(name, files):
    case = API_CASES[name]
    with pytest.raises(Exception) as caught:  # noqa: PT011 -- the exact class is asserted below
        case.call(files)
    assert caught.type is case.error, f"{name}: {caught.type.__name__}: {caught.value}"
    assert caught.match(case.match)


# ---------------------------------------------------------------------------------------------------- the CLI
# (argv, the text the single error line must hold: the flag's name and the reason)
CLI_CASES = {
    "audit-n-train-negative": (["audit", "--n-train", "-5"], "--n-train: must be >= 0"),
    "audit-n-train-word": (["audit", "--n-train", "many"], "--n-train: must be an int"),
    "audit-n-train-float": (["audit", "--n-train", "1.5"], "--n-train: must be an int"),
    "audit-n-test-negative": (["audit", "--n-test", "-1"], "--n-test: must be >= 0"),
    "audit-epochs-zero": (["audit", "--epochs", "0"], "--epochs: must be >= 1"),
    "audit-batch-size-zero": (["audit", "--batch-size", "0"], "--batch-size: must be >= 1"),
    "audit-pgd-steps-zero": (["audit", "--pgd-steps", "0"], "--pgd-steps: must be >= 1"),
    "audit-whitebox-n-negative": (["audit", "--whitebox-n", "-5"], "--whitebox-n: must be >= 1"),
    "audit-surrogate-n-zero": (["audit", "--surrogate-n", "0"], "--surrogate-n: must be >= 1"),
    "audit-surrogate-n-uap": (["audit", "--surrogate-n", "5", "--attacks", "uapepgd"], "`--surrogate-n` must be >= 10"),
    "audit-anneal-epochs-too-many": (
        ["audit", "--epochs", "3", "--anneal-epochs", "3"],
        r"`--anneal-epochs` must be fewer than every task's defence epochs \(3 here: `--epochs` / `--task-epochs`\)",
    ),
    "audit-anneal-epochs-negative": (["audit", "--anneal-epochs", "-1"], "--anneal-epochs: must be >= 0"),
    "audit-surrogate-data-unknown": (["audit", "--surrogate-data", "imagenet"], "`--surrogate-data`: Unknown dataset"),
    "audit-surrogate-data-folder-missing": (
        ["audit", "--surrogate-data", "folder:/no/such/dir"],
        "`--surrogate-data` 'folder:/no/such/dir': folder '/no/such/dir' does not exist",
    ),
    "audit-gen-epochs-zero": (["audit", "--gen-epochs", "0"], "--gen-epochs: must be >= 1"),
    "audit-sign-epochs-zero": (["audit", "--sign-epochs", "0"], "--sign-epochs: must be >= 1"),
    "audit-size-zero": (["audit", "--size", "0"], "--size: must be >= 8"),
    "audit-size-tiny": (["audit", "--size", "4"], "--size: must be >= 8"),
    "audit-seed-negative": (["audit", "--seed", "-1"], "--seed: must be >= 0"),
    "audit-seed-word": (["audit", "--seed", "zero"], "--seed: must be an int"),
    "audit-eps-zero": (["audit", "--eps", "0"], "--eps: must be in \\(0, 255\\]"),
    "audit-eps-negative": (["audit", "--eps", "-4"], "--eps: must be in"),
    "audit-eps-too-big": (["audit", "--eps", "300"], "--eps: must be in"),
    "audit-eps-nan": (["audit", "--eps", "nan"], "--eps: must be in"),
    "audit-eps-inf": (["audit", "--eps", "inf"], "--eps: must be in"),
    "audit-eps-word": (["audit", "--eps", "ten"], "--eps: must be a number"),
    "audit-device": (["audit", "--device", "tpu"], "--device: invalid choice"),
    "audit-backend": (["audit", "--backend", "dask"], "--backend: invalid choice"),
    "audit-attacks-unknown": (["audit", "--attacks", "nope"], "`--attacks`: Unknown attack 'nope'"),
    "audit-attacks-torchattacks": (["audit", "--attacks", "torchattacks:Nope"], "`--attacks`: Unknown attack"),
    "audit-attacks-mixed": (["audit", "--attacks", "ssp", "ssp", "nope"], "`--attacks`: Unknown attack 'nope'"),
    "audit-attacks-empty": (["audit", "--attacks"], "--attacks: expected at least one"),
    "audit-defences-unknown": (["audit", "--defences", "magic"], "`--defences`: Unknown defence"),
    "audit-data-unknown": (["audit", "--data", "imagenet-21k"], "`--data`: Unknown dataset"),
    "audit-data-cifar-no-root": (["audit", "--data", "cifar10"], "`--data` 'cifar10' needs a folder"),
    "audit-data-folder-missing": (["audit", "--data", "folder:/no/such/dir"], "`--data` 'folder:/no/such/dir'"),
    "audit-data-digits-root": (["audit", "--data", "digits:/tmp"], "`--data` 'digits:/tmp': digits takes no"),
    "audit-encoder-unknown": (["audit", "--encoder", "nope"], "`--encoder`: .*neither a zoo encoder"),
    "audit-encoder-onnx": (["audit", "--encoder", "{tmp}/model.onnx"], "`--encoder`: Unsupported encoder file"),
    "audit-encoder-missing": (["audit", "--encoder", "{tmp}/missing.safetensors"], "`--encoder`: .*neither"),
    "audit-out-file": (["audit", "--attacks", "pgd", "--out", "{tmp}/a_file"], "--out '.*a_file' is a file"),
    "audit-out-under-file": (["audit", "--attacks", "pgd", "--out", "{tmp}/a_file/sub"], "--out '.*' is a file"),
    "audit-unknown-flag": (["audit", "--n-trains", "3"], "unrecognized arguments: --n-trains"),
    "probe-data": (["probe", "--data", "imagenet"], "--data: unknown dataset 'imagenet'"),
    "probe-size": (["probe", "--size", "0"], "--size: must be >= 8"),
    "probe-n-train": (["probe", "--n-train", "0"], "--n-train: must be >= 1"),
    "probe-n-test": (["probe", "--n-test", "-3"], "--n-test: must be >= 1"),
    "probe-device": (["probe", "--device", "cuda"], "--device: invalid choice"),
    "probe-encoders": (["probe", "--encoders", "nope"], "--encoders: unknown encoder"),
    "probe-csv-under-file": (
        ["probe", "--encoders", "simclr_r18", "--csv", "{tmp}/a_file/t.csv"],
        "--csv '.*a_file' is a file",
    ),
    "probe-cifar-no-root": (["probe", "--data", "cifar10", "--encoders", "simclr_r18"], "CIFAR-10 not found"),
    "pretrain-kmnist-no-root": (["pretrain", "--data", "kmnist", "--out", "e.safetensors"], "pass `--root`"),
    "pretrain-out-suffix": (["pretrain", "--out", "enc.pt"], "--out must name a .safetensors file"),
    "pretrain-out-folder": (["pretrain", "--out", "{tmp}/results_dir.csv/x.safetensors/"], "--out"),
    "pretrain-out-under-file": (["pretrain", "--out", "{tmp}/a_file/enc.safetensors"], "--out '.*' is a file"),
    "pretrain-no-out": (["pretrain"], "the following arguments are required: --out"),
    "pretrain-method": (["pretrain", "--method", "dino", "--out", "e.safetensors"], "--method: invalid choice"),
    "pretrain-epochs": (["pretrain", "--epochs", "0", "--out", "e.safetensors"], "--epochs: must be >= 1"),
    "pretrain-batch-size": (["pretrain", "--batch-size", "1", "--out", "e.safetensors"], "--batch-size: must be >= 2"),
    "pretrain-width": (["pretrain", "--width", "0", "--out", "e.safetensors"], "--width: must be >= 1"),
    "pretrain-stem-stride": (["pretrain", "--stem-stride", "3", "--out", "e.safetensors"], "--stem-stride: invalid"),
    "pretrain-data": (["pretrain", "--data", "cifar", "--out", "e.safetensors"], "--data: unknown dataset"),
    "pretrain-n-train": (["pretrain", "--n-train", "1", "--out", "e.safetensors"], "--n-train: must be >= 2"),
    "pretrain-seed": (["pretrain", "--seed", "-2", "--out", "e.safetensors"], "--seed: must be >= 0"),
    "pretrain-device": (["pretrain", "--device", "tpu", "--out", "e.safetensors"], "--device: invalid choice"),
    "no-command": ([], "the following arguments are required: COMMAND"),
    "unknown-command": (["attack"], "invalid choice: 'attack'"),
    "unknown-global-flag": (["--quiet", "zoo"], "unrecognized arguments: --quiet"),
    "zoo-extra-argument": (["zoo", "--data", "x"], "unrecognized arguments: --data"),
}


@pytest.fixture
def no_work(monkeypatch):
    """Tripwires: any case that got past validation to the work fails loudly instead of running an audit."""
    import art_ssl.evaluation.grid as grid_module
    import art_ssl.evaluation.probe as probe_module
    import art_ssl.ssl as ssl_module

    def tripwire(*args, **kwargs):
        raise AssertionError("work started on a bad input")

    monkeypatch.setattr(grid_module, "run_grid", tripwire)
    monkeypatch.setattr(probe_module, "linear_probe", tripwire)
    monkeypatch.setattr(ssl_module, "pretrain", tripwire)


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_cli_bad_input(name, files, no_work, capsys, monkeypatch):
    from art_ssl.cli import main

    monkeypatch.chdir(files["tmp"])
    argv, expected = CLI_CASES[name]
    argv = [a.format(tmp=files["tmp"]) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, (name, code, err)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert re.search(expected, lines[0]), (expected, lines[0])


def test_every_cli_flag_has_help_and_every_subcommand_a_description():
    from art_ssl.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    for name, command in sub.choices.items():
        assert command.description, name
        for action in command._actions:
            assert action.help, (name, action.option_strings)


def test_cli_names_match_the_library():
    from art_ssl.cli import METHOD_NAMES, TASK_NAMES
    from art_ssl.data import TASKS
    from art_ssl.ssl.methods import METHODS

    assert tuple(sorted(METHODS)) == METHOD_NAMES and TASK_NAMES == TASKS


# Real processes: the installed entry point's behaviour, traceback or not.
SUBPROCESS_CASES = {
    "parse-error": (["audit", "--n-train", "-5"], 2, "--n-train: must be >= 0", False),
    "config-error": (["audit", "--attacks", "nope", "--out", "{tmp}/o"], 2, "`--attacks`: Unknown attack", False),
    "debug-shows-traceback": (["audit", "--debug", "--attacks", "nope", "--out", "{tmp}/o"], 1, "ValueError", True),
}


@pytest.mark.parametrize("name", sorted(SUBPROCESS_CASES))
def test_cli_bad_input_in_a_real_process(name, files):
    argv, code, expected, traceback = SUBPROCESS_CASES[name]
    argv = [a.format(tmp=files["tmp"]) for a in argv]
    done = subprocess.run(
        [sys.executable, "-m", "art_ssl", *argv],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=files["tmp"],
        env=child_env(),
    )
    assert done.returncode == code, done.stderr
    assert expected in done.stderr and ("Traceback" in done.stderr) == traceback
    if not traceback:
        assert len([line for line in done.stderr.splitlines() if "error:" in line]) == 1, done.stderr
