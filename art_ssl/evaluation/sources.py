"""
Where an audit's encoder and data come from: an encoder by zoo name or file (safetensors or TorchScript, never an
unpickled checkpoint), a dataset by name or ``kind:ROOT`` (``cifar10:/data/cifar-10-batches-py``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from art_ssl.data import TASKS, load_task
from art_ssl.data._common import subsample
from art_ssl.data.folder import load_image_folder
from art_ssl.data.tasks import Task
from art_ssl.estimators.encoder import PyTorchEncoder
from art_ssl.zoo import ZOO_ARCH, build_from_info, list_encoders, load_encoder, load_state_dict

DATA_KINDS = ("fashion-mnist", "fashion-mnist-subset", "digits", "mnist", "kmnist", "cifar10:ROOT", "stl10:ROOT",
              "folder:ROOT")  # fmt: skip


def check_encoder_spec(spec: str) -> None:
    """Fail early, before any work, on an encoder that :func:`load_encoder_spec` cannot load."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"Encoder must be a zoo name or a file path, got {spec!r}.")
    if spec in list_encoders():
        return
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"Encoder {spec!r} is neither a zoo encoder ({list_encoders()}) nor an existing file.")
    if path.suffix not in (".safetensors", ".pt", ".pth", ".ts"):
        raise ValueError(f"Unsupported encoder file '{path}': use .safetensors (zoo architecture) or TorchScript .pt.")


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


def load_encoder_spec(spec: str, size: int = 64, device_type: str = "cpu") -> PyTorchEncoder:
    """
    An encoder from a zoo name, a ``.safetensors`` file of the zoo's architecture (ResNet-18, width 16, stride-2
    stem; the input channels are read from the weights), or a TorchScript file (``.pt``/``.pth``/``.ts``, saved
    with ``torch.jit.save``). Pickled checkpoints are refused: loading one runs arbitrary code.

    :raises ValueError: unknown name, unreadable or mismatching weights, or an unsupported file type.
    """
    if spec in list_encoders():
        encoder = load_encoder(spec, device_type)
        if tuple(encoder.input_shape[1:]) != (size, size):  # fully convolutional: any size runs
            encoder = PyTorchEncoder(encoder.model, (encoder.input_shape[0], size, size), device_type=device_type)
        return encoder
    path = Path(spec)
    if not path.exists():
        raise ValueError(f"Encoder {spec!r} is neither a zoo encoder ({list_encoders()}) nor an existing file.")
    if path.suffix == ".safetensors":
        state = load_state_dict(path)
        convs = [k for k, v in state.items() if k.endswith("weight") and v.ndim == 4]
        stem = [state[k] for k in sorted(convs, key=lambda k: not k.startswith("stem."))]  # the input layer first
        if not stem:
            raise ValueError(f"'{path}' holds no convolution weights: not an encoder of the zoo's architecture.")
        kwargs = {**ZOO_ARCH[1], "in_channels": int(stem[0].shape[1])}
        model = build_from_info({"arch": ZOO_ARCH[0], "arch_kwargs": kwargs}, state)
        return PyTorchEncoder(model, (kwargs["in_channels"], size, size), device_type=device_type)
    if path.suffix in (".pt", ".pth", ".ts"):
        try:
            model = torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError) as err:
            raise ValueError(
                f"'{path}' is not a TorchScript module ({err.__class__.__name__}). art_ssl never unpickles "
                "checkpoints: save the encoder with torch.jit.save(torch.jit.script(model), path), or its "
                "state_dict with safetensors."
            ) from err
        channels = _input_channels(model, size)
        return PyTorchEncoder(model.eval(), (channels, size, size), device_type=device_type)
    raise ValueError(f"Unsupported encoder file '{path}': use .safetensors (zoo architecture) or TorchScript .pt.")


def _input_channels(model: torch.nn.Module, size: int) -> int:
    for channels in (3, 1):
        try:
            with torch.no_grad():
                out = model(torch.zeros(2, channels, size, size))
        except RuntimeError:
            continue
        if out.ndim == 2:
            return channels
    raise ValueError("The TorchScript encoder must map (N, 1 or 3, H, W) images to (N, D) embeddings.")


def load_data_spec(
    spec: str, size: int = 64, channels: int | None = None, n_train: int | None = None,
    n_test: int | None = None, seed: int = 0,
) -> Task:  # fmt: skip
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
        task = Task(task.name, *subsample(task.x_train, task.y_train, n_train, seed),
                    *subsample(task.x_test, task.y_test, n_test, seed))  # fmt: skip
    else:
        task = load_task(kind, size=size, root=root or None, n_train=n_train, n_test=n_test, seed=seed)
    if channels is not None and task.x_train.shape[1] != channels:
        task = Task(task.name, _to_channels(task.x_train, channels), task.y_train, _to_channels(task.x_test, channels),
                    task.y_test)  # fmt: skip
    return task


def _folder_task(root: str | os.PathLike, size: int, channels: int | None, seed: int) -> Task:
    mode = "L" if channels == 1 else "RGB"
    root = Path(root)
    if (root / "train").is_dir() and (root / "test").is_dir():
        x_train, y_train, train_classes = load_image_folder(root / "train", size, mode)
        x_test, y_test, test_classes = load_image_folder(root / "test", size, mode)
        if train_classes != test_classes:
            raise ValueError(f"`data` folder '{root}': train/ and test/ must hold the same class folders, got "
                             f"{train_classes} and {test_classes}.")  # fmt: skip
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
