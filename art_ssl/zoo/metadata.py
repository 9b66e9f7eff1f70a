"""
What an encoder file must say about itself so that it loads with no other flag: architecture (and its constructor
arguments), input shape, normalisation and the SSL method, stored as safetensors metadata (strings only, no code).

    >>> save_encoder(model, "enc.safetensors", arch="resnet18_cifar", input_shape=(3, 32, 32), method="simclr")
    >>> read_metadata("enc.safetensors")["arch"]
    'resnet18_cifar'
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

# Every key art_ssl writes starts with this, so foreign metadata ({"format": "pt"} from other tools) is never misread.
PREFIX = "art_ssl."
FORMAT_VERSION = "1"
FIELDS = ("arch", "arch_kwargs", "input_shape", "mean", "std", "method")


def encoder_metadata(
    arch: str,
    input_shape: Sequence[int],
    arch_kwargs: dict[str, Any] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    method: str | None = None,
) -> dict[str, str]:
    """
    The metadata strings for an encoder file.

    :param arch: Architecture name (:data:`art_ssl.models.ARCHITECTURES`).
    :param input_shape: ``(C, H, W)`` the encoder was trained at.
    :param arch_kwargs: Constructor arguments of ``arch`` (e.g. ``in_channels``, ``width``).
    :param mean: Per-channel normalisation mean applied to [0, 1] pixels, or ``None`` for none.
    :param std: Per-channel normalisation std, given together with ``mean``.
    :param method: SSL method that trained it (``"simclr"``, ...), or ``None`` when unknown.
    """
    from art_ssl.models import ARCHITECTURES, canonical_arch

    if canonical_arch(arch, arch_kwargs) not in ARCHITECTURES:
        raise ValueError(f"`arch` must be one of {sorted(ARCHITECTURES)}, got {arch!r}.")
    shape = [int(s) for s in input_shape]
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"`input_shape` must be (C, H, W) with positive sides, got {input_shape!r}.")
    if (mean is None) != (std is None):
        raise ValueError("`mean` and `std` must be given together.")
    meta = {
        "format_version": FORMAT_VERSION,
        "arch": canonical_arch(arch, arch_kwargs),
        "arch_kwargs": json.dumps(arch_kwargs or {}),
        "input_shape": json.dumps(shape),
    }
    if mean is not None and std is not None:  # both or neither (checked above)
        mean_l, std_l = [float(v) for v in mean], [float(v) for v in std]
        if len(mean_l) not in (1, shape[0]) or len(std_l) != len(mean_l) or min(std_l) <= 0:
            raise ValueError(f"`mean`/`std` need 1 or {shape[0]} values (std > 0), got {mean!r} / {std!r}.")
        meta["mean"], meta["std"] = json.dumps(mean_l), json.dumps(std_l)
    if method is not None:
        meta["method"] = str(method)
    return {PREFIX + k: v for k, v in meta.items()}


def arch_of(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """
    The ``(arch, arch_kwargs)`` that :func:`save_encoder` records for ``model``, read off the module (the ResNets
    of :mod:`art_ssl.models`; other encoders have no architecture name this metadata could rebuild them from).

    :raises ValueError: ``model`` is not one of those ResNets.
    """
    from art_ssl.models import ResNet18, TorchvisionResNet

    if isinstance(model, TorchvisionResNet):
        name = f"resnet{model.depth}" + ("_cifar" if model.stem_kind == "cifar" else "")
        kwargs: dict[str, Any] = {"in_channels": model.in_channels}
        if model.stem_kind == "cifar" and model.stem_padding != 1:
            kwargs["stem_padding"] = model.stem_padding
        return name, kwargs
    if isinstance(model, ResNet18):
        return "zoo_resnet18", {
            "in_channels": model.in_channels,
            "width": model.width,
            "stem_stride": model.stem_stride,
        }
    raise ValueError(f"only ResNet encoders are written as .safetensors with metadata, not {type(model).__name__}")


def save_encoder(model: nn.Module, path: str | os.PathLike, **metadata: Any) -> Path:
    """
    Write ``model.state_dict()`` to a ``.safetensors`` file with :func:`encoder_metadata` (keyword arguments).

    :return: The path written.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"The output must be a .safetensors file, got '{path}'.")
    meta = encoder_metadata(**metadata)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """
    art_ssl's metadata of a ``.safetensors`` file, decoded (``arch``, ``arch_kwargs``, ``input_shape``, ``mean``,
    ``std``, ``method`` where present); ``{}`` for a file written by another tool.

    :raises ValueError: the file is not a valid safetensors file or its art_ssl metadata is malformed.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"Weight file '{path}' is not a valid safetensors file: {err}") from err
    ours = {k[len(PREFIX) :]: v for k, v in raw.items() if k.startswith(PREFIX)}
    out: dict[str, Any] = {}
    try:
        for key in FIELDS:
            if key in ours:
                out[key] = ours[key] if key in ("arch", "method") else json.loads(ours[key])
    except json.JSONDecodeError as err:
        raise ValueError(f"Weight file '{path}' has malformed art_ssl metadata: {err}") from err
    return out
