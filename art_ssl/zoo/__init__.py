"""
Pre-trained encoders shipped inside the package (safetensors weights, never unpickled) and their metadata.

    >>> from art_ssl.zoo import list_encoders, load_encoder
    >>> encoder = load_encoder(list_encoders()[0])   # an ART PyTorchEncoder
"""
from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from art_ssl.estimators.encoder import PyTorchEncoder
from art_ssl.models import build_encoder

_PACKAGE = "art_ssl.zoo"
METADATA_FILE = "zoo.json"
# Architecture of the shipped encoders: ResNet-18 at width 16 with a stride-2 stem (0.7M parameters, 2.8 MB), which
# costs at 64x64 what a width-16 ResNet-18 costs at 32x32 (DESIGN §6: the benchmark runs at 64x64).
ZOO_ARCH: tuple[str, dict[str, int]] = ("resnet18", {"in_channels": 1, "width": 16, "stem_stride": 2})


def _metadata() -> dict[str, dict[str, Any]]:
    with resources.files(_PACKAGE).joinpath(METADATA_FILE).open("r") as f:
        return json.load(f)


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
    from art_ssl.attacks.poisoning import square_trigger

    info = encoder_info(name)
    if not info.get("backdoored"):
        raise ValueError(f"Encoder {name!r} is clean; backdoored ones: {list_encoders(backdoored=True)}.")
    out = []
    for record in info["backdoor_targets"]:
        spec = record["trigger"]
        trigger = square_trigger(tuple(info["input_shape"]), size=spec["size"], margin=spec["margin"],
                                 value=spec["value"], corner=spec["corner"])  # fmt: skip
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
        "name", "method", "backdoored", "arch", "params", "size_mb", "epochs", "train_minutes", "device",
        "probe_acc", "raw_pixel_probe_acc", "probe_acc_5k", "raw_pixel_probe_acc_5k",
    ]  # fmt: skip
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


def load_encoder(name: str, device_type: str = "gpu") -> PyTorchEncoder:
    """
    Load a shipped encoder as an ART :class:`PyTorchEncoder`, offline from package data.

    :param name: One of :func:`list_encoders`.
    :param device_type: ``"gpu"`` (CUDA when available) or ``"cpu"``.
    """
    info = encoder_info(name)
    with resources.as_file(resources.files(_PACKAGE).joinpath("weights", info["file"])) as path:
        state_dict = load_state_dict(path, info.get("sha256"))
    model = build_from_info(info, state_dict)
    return PyTorchEncoder(
        model, tuple(info["input_shape"]), clip_values=(0.0, 1.0), preprocessing=None, device_type=device_type
    )


__all__ = [
    "ZOO_ARCH", "backdoor_targets", "build_from_info", "encoder_info", "list_encoders", "load_encoder",
    "load_state_dict", "sha256_of", "zoo_table",
]  # fmt: skip
