"""
Pre-trained encoders shipped inside the package (safetensors weights, never unpickled) and their metadata.

    >>> from art_ssl.zoo import list_encoders, load_encoder
    >>> encoder = load_encoder(list_encoders()[0])   # an ART PyTorchEncoder
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from art_ssl.estimators.encoder import PyTorchEncoder
from art_ssl.models import ZOO_RESNET, build_encoder
from art_ssl.zoo.metadata import read_metadata, save_encoder

logger = logging.getLogger(__name__)

_PACKAGE = "art_ssl.zoo"
METADATA_FILE = "zoo.json"
# Architecture of the shipped encoders: ResNet-18 at width 16 with a stride-2 stem (0.7M parameters, 2.8 MB), which
# costs at 64x64 what a width-16 ResNet-18 costs at 32x32 (DESIGN §6: the benchmark runs at 64x64).
ZOO_ARCH: tuple[str, dict[str, int]] = (ZOO_RESNET, {"in_channels": 1, "width": 16, "stem_stride": 2})


def _metadata() -> dict[str, dict[str, Any]]:
    with resources.files(_PACKAGE).joinpath(METADATA_FILE).open("r") as f:
        return json.load(f)


def update_index(name: str, entry: dict[str, Any], keep: Callable[[str], bool] = lambda key: True) -> None:
    """
    Write ``entry`` as zoo encoder ``name`` into ``zoo.json`` (the package's index), under an exclusive file lock so
    that several training runs finishing at once (one per encoder) do not lose each other's entries. Keys of the
    old entry for which ``keep(key)`` is true and which ``entry`` does not set are kept.

    :param name: Zoo name.
    :param entry: Its metadata (JSON-serialisable).
    :param keep: Which keys of an existing entry survive (default all).
    """
    import fcntl  # POSIX only; the zoo's own maintenance scripts run on Linux

    folder = Path(str(resources.files(_PACKAGE)))  # a source tree or an unpacked install, never a zip
    path = folder / METADATA_FILE
    with open(folder / f".{METADATA_FILE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        meta = json.loads(path.read_text())
        old = {k: v for k, v in meta.get(name, {}).items() if keep(k)}
        meta[name] = {**old, **entry}
        path.write_text(json.dumps(dict(sorted(meta.items())), indent=2) + "\n")


def list_encoders(backdoored: bool | None = None) -> list[str]:
    """
    Names of the shipped encoders.

    :param backdoored: ``None``: all; ``False``: the clean ones; ``True``: the backdoored ones (planted with
                       BadEncoder for backdoor-defence experiments; see :func:`backdoor_targets`).
    """
    if backdoored not in (None, True, False):
        raise ValueError(f"`backdoored` must be None, True or False, got {backdoored!r}.")
    entries = _metadata()
    return sorted(n for n, e in entries.items() if backdoored is None or bool(e.get("backdoored")) == backdoored)


def backdoor_targets(name: str) -> list[dict[str, Any]]:
    """
    The backdoor of a backdoored zoo encoder: one dict per target with ``task``, ``target`` (class), ``trigger`` (an
    :class:`~art_ssl.attacks.poisoning.Trigger`, ready for ``trigger.apply(x)``) and ``reference`` (where the
    reference input came from).

    :raises ValueError: ``name`` is unknown or a clean encoder.
    """
    from art_ssl.core.trigger import square_trigger

    info = encoder_info(name)
    if not info.get("backdoored"):
        raise ValueError(f"Encoder {name!r} is clean; backdoored ones: {list_encoders(backdoored=True)}.")
    out = []
    for record in info["backdoor_targets"]:
        spec = record["trigger"]
        trigger = square_trigger(
            tuple(info["input_shape"]),
            size=spec["size"],
            margin=spec["margin"],
            value=spec["value"],
            corner=spec["corner"],
        )
        out.append({**record, "trigger": trigger})
    return out


def encoder_info(name: str) -> dict[str, Any]:
    """Metadata of one encoder: method, architecture, training command and seed, linear-probe accuracies, ..."""
    entries = _metadata()
    if name not in entries:
        raise ValueError(f"`name` must be one of {sorted(entries)}, got {name!r}.")
    return dict(entries[name], name=name)


def zoo_table() -> pd.DataFrame:
    """One row per encoder with its method, size, training budget and recorded probe accuracies."""
    columns = [
        "name",
        "method",
        "backdoored",
        "arch",
        "params",
        "size_mb",
        "epochs",
        "train_minutes",
        "device",
        "probe_acc",
        "raw_pixel_probe_acc",
        "probe_acc_5k",
        "raw_pixel_probe_acc_5k",
    ]
    rows = [{"backdoored": False, **encoder_info(n)} for n in list_encoders()]
    return pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (the zoo records it for every shipped weight file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_state_dict(path: str | os.PathLike, expected_sha256: str | None = None) -> dict:
    """
    Read a safetensors weight file (no pickle, so no code runs), checking its hash when one is given.

    :raises ValueError: the file is corrupt, truncated or does not match ``expected_sha256``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Weight file '{path}' not found.")
    if expected_sha256 is not None and sha256_of(path) != expected_sha256:
        raise ValueError(f"Weight file '{path}' is corrupt: its SHA-256 does not match the zoo's record.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"Weight file '{path}' is not a valid safetensors file: {err}") from err


def build_from_info(info: dict[str, Any], state_dict: dict) -> nn.Module:
    """Rebuild an encoder from its metadata and load ``state_dict`` strictly."""
    model = build_encoder(info["arch"], **info.get("arch_kwargs", {}))
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        raise ValueError(f"Weights do not fit architecture {info['arch']} {info.get('arch_kwargs')}: {err}") from err
    return model.eval()


def load_encoder(
    source: str,
    device_type: str = "gpu",
    *,
    arch: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    preprocessing: tuple[Any, Any] | None = None,
    key_prefix: str | None = None,
    trust_code: bool = False,
) -> PyTorchEncoder:
    """
    Load an encoder as an ART :class:`PyTorchEncoder` from a zoo name, a checkpoint file or a Hugging Face folder.

    Files: ``.safetensors`` (art_ssl's own carry arch, input shape and normalisation in their metadata, so nothing
    else is needed); ``.pt``/``.pth``/``.pth.tar``/``.ckpt`` in the layouts of solo-learn, lightly, MoCo v1/v2/v3,
    BadEncoder, DataParallel or a plain (torchvision) state dict, read with ``torch.load(weights_only=True)`` only
    (see :mod:`art_ssl.zoo.checkpoints`); a local ViT / DINOv2 / CLIP folder (``pip install art_ssl[transformers]``).
    A TorchScript archive is a program: it loads only with ``trust_code=True``, which runs the file's code.

    :param source: Zoo name (:func:`list_encoders`), file path or model folder.
    :param device_type: ``"gpu"`` (CUDA when available) or ``"cpu"``.
    :param arch: Architecture (``"resnet18"``, ``"resnet50_cifar"``, ..., optionally ``"name:opt=int,..."``);
                 default: the file's metadata, else read off the weights.
    :param input_shape: ``(C, H, W)``; default: metadata, else 32x32 for a CIFAR stem, 224x224 for an ImageNet one.
    :param preprocessing: ``(mean, std)`` on [0, 1] pixels; default: the file's metadata or preprocessor config,
                          else none (a warning says so for foreign checkpoints, which were usually trained normalised).
    :param key_prefix: Prefix of the backbone's keys in the state dict (default: detected).
    :param trust_code: Allow TorchScript (runs the file's code). Never needed for weights.
    :raises ValueError: unknown name, unsafe file (refused before anything runs), weights that do not fit.
    """
    if not isinstance(source, str) or not source:
        raise ValueError(f"`source` must be a zoo name or a path, got {source!r}.")
    if trust_code not in (True, False):
        raise TypeError(f"`trust_code` must be a bool, got {trust_code!r}.")
    if input_shape is not None and (len(tuple(input_shape)) != 3 or min(input_shape) < 1):
        raise ValueError(f"`input_shape` must be (C, H, W) with positive sides, got {input_shape!r}.")
    if isinstance(preprocessing, (tuple, list)) and len(preprocessing) == 2:
        channels = int(input_shape[0]) if input_shape is not None else None
        mean, std = preprocessing
        preprocessing = (_per_channel(mean, channels), _per_channel(std, channels))
    if source in _metadata():
        if arch is not None or key_prefix is not None:
            raise ValueError(f"`arch`/`key_prefix` do not apply to the zoo encoder {source!r}.")
        info = encoder_info(source)
        with resources.as_file(resources.files(_PACKAGE).joinpath("weights", info["file"])) as path:
            state_dict = load_state_dict(path, info.get("sha256"))
        model = build_from_info(info, state_dict)
        return PyTorchEncoder(
            model,
            tuple(input_shape or info["input_shape"]),
            clip_values=(0.0, 1.0),
            preprocessing=preprocessing,
            device_type=device_type,
        )
    if not os.path.exists(source):
        raise ValueError(f"Encoder {source!r} is neither a zoo encoder ({list_encoders()}) nor an existing file.")
    from art_ssl.zoo.loader import load_source

    loaded = load_source(source, arch=arch, key_prefix=key_prefix, trust_code=trust_code, input_shape=input_shape)
    shape = tuple(input_shape) if input_shape is not None else loaded.input_shape or _default_shape(loaded)
    if preprocessing is None and loaded.mean is not None:
        preprocessing = (_per_channel(loaded.mean, shape[0]), _per_channel(loaded.std, shape[0]))
    if preprocessing is None and not loaded.info.get("metadata") and loaded.info.get("layout") != "torchscript":
        logger.warning(
            "%s: no normalisation is recorded; the encoder sees raw [0, 1] pixels. Pass preprocessing="
            "(mean, std) (CLI: --mean/--std) if it was trained on normalised images.",
            source,
        )
    return PyTorchEncoder(
        loaded.model, shape, clip_values=(0.0, 1.0), preprocessing=preprocessing, device_type=device_type
    )


def _default_shape(loaded) -> tuple[int, int, int]:
    kwargs = loaded.info.get("arch_kwargs", {})
    channels = int(kwargs.get("in_channels", loaded.info.get("channels", 3)))
    arch = loaded.info.get("arch", "")
    side = 32 if arch.endswith("_cifar") else 64 if arch == "zoo_resnet18" else 32 if not arch else 224
    return (channels, side, side)


def _per_channel(values, channels: int | None) -> np.ndarray:
    """(C, 1, 1) so that ART's normalisation broadcasts over channels of NCHW images, not over their width."""
    array = np.asarray(values, dtype=np.float32).reshape(-1)
    if channels is None:
        channels = array.size
    if array.size == 1:
        array = np.repeat(array, channels)
    if array.size != channels:
        raise ValueError(f"Normalisation has {array.size} values for {channels} input channels.")
    return array.reshape(channels, 1, 1)


__all__ = [
    "ZOO_ARCH",
    "backdoor_targets",
    "build_from_info",
    "encoder_info",
    "list_encoders",
    "load_encoder",
    "load_state_dict",
    "read_metadata",
    "save_encoder",
    "sha256_of",
    "zoo_table",
]
