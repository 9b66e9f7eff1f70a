"""
Where an audit's encoder and data come from: an encoder by zoo name, checkpoint file or model folder
(:func:`art_ssl.zoo.load_encoder`), a dataset by name or ``kind:ROOT`` (``cifar10:/data/cifar-10-batches-py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from art_ssl.audit_names import DATA_KINDS  # noqa: F401  (one definition, re-exported here)
from art_ssl.data import TASKS, load_task
from art_ssl.data._common import subsample
from art_ssl.data.folder import load_image_folder
from art_ssl.data.tasks import Task
from art_ssl.estimators.encoder import PyTorchEncoder
from art_ssl.zoo import list_encoders, load_encoder


@dataclass(frozen=True)
class EncoderOptions:
    """
    How to read encoder files that do not describe themselves (see :func:`art_ssl.zoo.load_encoder`); zoo names and
    art_ssl's own ``.safetensors`` files need none of it.

    :param arch: Architecture name (``resnet18_cifar``, ``resnet50``, ...).
    :param key_prefix: Backbone key prefix.
    :param mean: Per-channel normalisation mean on [0, 1] pixels.
    :param std: Its std (with ``mean``).
    :param trust_code: Allow TorchScript files, whose code runs on load.
    """

    arch: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    key_prefix: str | None = None
    trust_code: bool = False

    def __post_init__(self) -> None:
        if (self.mean is None) != (self.std is None):
            raise ValueError("`mean` and `std` must be given together.")
        if self.mean is not None and self.std is not None:  # both or neither (checked above)
            mean, std = tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)
            object.__setattr__(self, "mean", mean)
            object.__setattr__(self, "std", std)
            if len(mean) != len(std) or min(std) <= 0:
                raise ValueError(f"`mean`/`std` need as many values (std > 0), got {self.mean} / {self.std}.")
        if self.trust_code not in (True, False):
            raise TypeError(f"`trust_code` must be a bool, got {self.trust_code!r}.")


def check_encoder_spec(spec: str) -> None:
    """Fail early, before any work, on an encoder that :func:`load_encoder_spec` cannot load."""
    from art_ssl.zoo.loader import FILE_SUFFIXES

    if not isinstance(spec, str) or not spec:
        raise ValueError(f"Encoder must be a zoo name or a file path, got {spec!r}.")
    if spec in list_encoders():
        return
    path = Path(spec)
    if path.is_dir() and (path / "config.json").is_file():
        return
    if not path.is_file():
        raise ValueError(f"Encoder {spec!r} is neither a zoo encoder ({list_encoders()}) nor an existing file.")
    if not spec.endswith(FILE_SUFFIXES):
        raise ValueError(f"Unsupported encoder file '{path}': use one of {FILE_SUFFIXES} or a model folder.")


def check_data_spec(spec: str) -> None:
    """Fail early on a dataset spec that :func:`load_data_spec` would refuse (unknown kind, missing folder)."""
    canonical_data_spec(spec)


def canonical_data_spec(spec: str) -> str:
    """``spec`` checked (as :func:`check_data_spec`) and spelt one way: hyphens in the kind
    (``fashion_mnist_subset`` -> ``fashion-mnist-subset``), the folder as given."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"`data` must be one of {DATA_KINDS}, got {spec!r}.")
    kind, sep, root = spec.partition(":")
    kind = kind.replace("-", "_")
    if kind not in TASKS and kind != "folder":
        raise ValueError(f"Unknown dataset {spec!r}; choose from {DATA_KINDS}.")
    if kind in ("cifar10", "stl10", "folder") and not root:
        raise ValueError(f"`data` {spec!r} needs a folder: {kind}:ROOT.")
    if sep and kind not in ("cifar10", "stl10", "folder", "fashion_mnist", "mnist", "kmnist"):
        raise ValueError(f"`data` {spec!r}: {kind} takes no folder.")
    if root and not Path(root).expanduser().is_dir():
        raise ValueError(f"`data` {spec!r}: folder '{root}' does not exist.")
    return kind.replace("_", "-") + (f":{root}" if root else "")


def load_encoder_spec(
    spec: str, size: int = 64, device_type: str = "cpu", options: EncoderOptions | None = None
) -> PyTorchEncoder:
    """
    An encoder from a zoo name, a checkpoint file or a model folder, through :func:`art_ssl.zoo.load_encoder`
    (pickles read with ``weights_only=True`` only; TorchScript only with ``options.trust_code``), at ``size`` x
    ``size`` inputs (the audit's image side; the encoders are fully convolutional or interpolate positions).

    :raises ValueError: unknown name, unsafe or unreadable file, weights that do not fit.
    """
    options = options or EncoderOptions()
    preprocessing = (
        None
        if options.mean is None
        else (
            np.asarray(options.mean, np.float32).reshape(-1, 1, 1),
            np.asarray(options.std, np.float32).reshape(-1, 1, 1),
        )
    )
    extra: dict[str, Any] = (
        {}
        if spec in list_encoders()
        else {"arch": options.arch, "key_prefix": options.key_prefix, "trust_code": options.trust_code}
    )
    encoder = load_encoder(spec, device_type, preprocessing=preprocessing, **extra)
    if tuple(encoder.input_shape[1:]) != (size, size):
        params = encoder.get_params()
        params["input_shape"] = (encoder.input_shape[0], size, size)
        encoder = PyTorchEncoder(**params)
    return encoder


def load_data_spec(
    spec: str,
    size: int = 64,
    channels: int | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
) -> Task:
    """
    A downstream task from ``fashion-mnist``, ``fashion-mnist-subset`` (shipped), ``digits``, ``mnist``,
    ``kmnist``, ``cifar10:ROOT``, ``stl10:ROOT`` or ``folder:ROOT`` (``ROOT/train/<class>/`` and ``ROOT/test/<class>/``,
    or one ``ROOT/<class>/`` split 80/20 with ``seed``). Underscores may replace hyphens. With ``channels`` the
    images are converted to the encoder's channels (luminance for grey-scale encoders, repetition for RGB ones).

    :raises ValueError: an unknown kind, or a kind that needs ``:ROOT`` without it.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"`data` must be one of {DATA_KINDS}, got {spec!r}.")
    kind, _, root = canonical_data_spec(spec).partition(":")
    kind = kind.replace("-", "_")
    if kind == "folder":
        task = _folder_task(root, size, channels, seed)
        task = Task(
            task.name,
            *subsample(task.x_train, task.y_train, n_train, seed),
            *subsample(task.x_test, task.y_test, n_test, seed),
        )
    else:
        task = load_task(kind, size=size, root=root or None, n_train=n_train, n_test=n_test, seed=seed)
    if channels is not None and task.x_train.shape[1] != channels:
        task = Task(
            task.name,
            _to_channels(task.x_train, channels),
            task.y_train,
            _to_channels(task.x_test, channels),
            task.y_test,
        )
    return task


def _folder_task(root: str | os.PathLike, size: int, channels: int | None, seed: int) -> Task:
    mode = "L" if channels == 1 else "RGB"
    root = Path(root)
    if (root / "train").is_dir() and (root / "test").is_dir():
        x_train, y_train, train_classes = load_image_folder(root / "train", size, mode)
        x_test, y_test, test_classes = load_image_folder(root / "test", size, mode)
        if train_classes != test_classes:
            raise ValueError(
                f"`data` folder '{root}': train/ and test/ must hold the same class folders, got "
                f"{train_classes} and {test_classes}."
            )
    else:
        x, y, _ = load_image_folder(root, size, mode)
        order = np.random.default_rng(seed).permutation(len(x))
        cut = int(round(0.8 * len(x)))
        (x_train, y_train), (x_test, y_test) = (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])
    return Task(f"folder:{root.name}", x_train, y_train, x_test, y_test)


def _to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    if channels == 1 and x.shape[1] == 3:
        weights = np.array([0.299, 0.587, 0.114], np.float32).reshape(1, 3, 1, 1)
        return (x * weights).sum(1, keepdims=True).astype(np.float32)
    if channels == 3 and x.shape[1] == 1:
        return np.repeat(x, 3, axis=1)
    raise ValueError(f"Cannot convert {x.shape[1]}-channel images to {channels} channels.")


def encoder_label(spec: str) -> tuple[str, str]:
    """How tables name the encoder ``spec``: ``(label, method)``, the zoo name and its SSL method, or a file's stem
    and ``""`` (a file's method is not known without its training record)."""
    if spec in list_encoders():
        from art_ssl.zoo import encoder_info

        return spec, str(encoder_info(spec).get("method", ""))
    return Path(spec).stem, ""
