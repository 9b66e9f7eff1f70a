"""
From a file or folder a user holds to an encoder module, its input shape and normalisation (see
:func:`art_ssl.zoo.load_encoder`, the public entry point).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from art_ssl.zoo import checkpoints as ckpt
from art_ssl.zoo.metadata import read_metadata

logger = logging.getLogger(__name__)

FILE_SUFFIXES = (".safetensors", ".pt", ".pth", ".pth.tar", ".tar", ".ckpt", ".ts", ".bin")


@dataclass
class LoadedEncoder:
    """What a source yields: the module (eval mode, CPU) and what is known about its inputs."""

    model: nn.Module
    input_shape: tuple[int, int, int] | None
    mean: list[float] | None = None
    std: list[float] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def load_source(
    source: str,
    *,
    arch: str | None = None,
    key_prefix: str | None = None,
    trust_code: bool = False,
    input_shape: tuple[int, ...] | None = None,
) -> LoadedEncoder:
    """
    Load a checkpoint file or a Hugging Face folder (not a zoo name).

    :param source: Path of a ``.safetensors``/``.pt``/``.pth``/``.pth.tar``/``.ckpt`` file or a model folder.
    :param arch: Architecture, optionally with integer options (``"resnet18_cifar:stem_padding=2"``); default: from
                 the file's art_ssl metadata, else read off the weights' names and shapes.
    :param key_prefix: Prefix of the backbone's keys; default: detected.
    :param trust_code: Allow a TorchScript archive, whose code runs on load.
    :param input_shape: ``(C, H, W)``, needed to probe a TorchScript archive (default (3, 32, 32)).
    """
    from art_ssl.zoo.hf import is_hf_folder, load_hf_vision

    path = Path(source)
    if path.is_dir():
        if not is_hf_folder(path):
            raise ValueError(f"Folder '{path}' is not a Hugging Face model folder (no config.json).")
        model, info = load_hf_vision(path)
        return LoadedEncoder(model, info["input_shape"], info["mean"], info["std"], {"layout": "huggingface", **info})
    if not path.is_file():
        raise FileNotFoundError(f"Encoder file '{path}' not found.")
    if not str(path).endswith(FILE_SUFFIXES):
        raise ValueError(f"Unsupported encoder file '{path}': use one of {FILE_SUFFIXES} or a model folder.")
    if path.suffix == ".safetensors":
        return _from_safetensors(path, arch, key_prefix)
    if ckpt.is_torchscript_archive(path):
        return _from_torchscript(path, trust_code, input_shape)
    checkpoint = ckpt.read_pickled(path)
    state, where = ckpt.find_state_dict(checkpoint)
    return _build(state, arch, key_prefix, source=f"'{path}' ({where})", lightning=_is_lightning(checkpoint))


def _from_safetensors(path: Path, arch: str | None, key_prefix: str | None) -> LoadedEncoder:
    from art_ssl.zoo import load_state_dict

    meta = read_metadata(path)
    state = load_state_dict(path)
    if not meta.get("arch"):
        return _build(state, arch, key_prefix, source=f"'{path}'")
    if arch is None:  # the file says what it is
        loaded = _build(state, meta["arch"], key_prefix, source=f"'{path}'", kwargs=dict(meta.get("arch_kwargs", {})))
    else:  # the caller overrides the architecture; the file still knows its inputs and normalisation
        loaded = _build(state, arch, key_prefix, source=f"'{path}'")
    loaded.input_shape = tuple(meta["input_shape"]) if "input_shape" in meta else loaded.input_shape
    loaded.mean, loaded.std = meta.get("mean"), meta.get("std")
    loaded.info.update(method=meta.get("method"), metadata=True)
    return loaded


def _from_torchscript(path: Path, trust_code: bool, input_shape) -> LoadedEncoder:
    from art_ssl.estimators.torchscript import load_torchscript
    from art_ssl.zoo.checkpoints import UnsafeCheckpointError

    if trust_code is not True:
        raise UnsafeCheckpointError(
            f"'{path}' is a TorchScript archive: loading it compiles and runs the code stored in the file. Load it "
            "only if you trust its author, with trust_code=True (CLI: --trust-code)."
        )
    shape = tuple(input_shape) if input_shape is not None else (3, 32, 32)
    try:
        model = load_torchscript(path, shape)
    except ValueError:
        if input_shape is not None or shape[0] != 3:
            raise
        shape = (1, 32, 32)  # a grey-scale encoder, as the zoo's
        model = load_torchscript(path, shape)
    return LoadedEncoder(
        model, shape if input_shape is not None else None, info={"layout": "torchscript", "channels": shape[0]}
    )


def _is_lightning(checkpoint: Any) -> bool:
    keys = ("pytorch-lightning_version", "hyper_parameters", "callbacks")
    return isinstance(checkpoint, dict) and any(k in checkpoint for k in keys)


def _build(
    state: dict,
    arch: str | None,
    key_prefix: str | None,
    source: str,
    kwargs: dict | None = None,
    lightning: bool = False,
) -> LoadedEncoder:
    from art_ssl.models import ARCHITECTURES, build_encoder, canonical_arch

    backbone, prefix = ckpt.strip_prefix(state, key_prefix)
    backbone, from_sequential = ckpt.sequential_to_torchvision(backbone)
    if arch is None and kwargs is None:
        name, arch_kwargs = ckpt.infer_arch(backbone)
    elif arch is not None and kwargs is None:
        name, arch_kwargs = ckpt.parse_arch(arch)
        if name.startswith("resnet") and "in_channels" not in arch_kwargs and "conv1.weight" in backbone:
            arch_kwargs["in_channels"] = int(backbone["conv1.weight"].shape[1])
        if canonical_arch(name, arch_kwargs) == "zoo_resnet18" and "stem.0.weight" in backbone:
            stem = backbone["stem.0.weight"]
            arch_kwargs = {"in_channels": int(stem.shape[1]), "width": int(stem.shape[0]), **arch_kwargs}
    else:
        name, arch_kwargs = str(arch), dict(kwargs or {})
    name = canonical_arch(name, arch_kwargs)
    if name not in ARCHITECTURES:
        raise ValueError(f"`arch` must be one of {sorted(ARCHITECTURES)}, got {name!r}.")
    # solo-learn pads its CIFAR stem by 2 (methods/base.py); its Lightning checkpoints name the backbone
    # ``backbone.``/``encoder.`` and keep torchvision's names.
    solo_learn = lightning and prefix in ("backbone.", "encoder.") and not from_sequential
    if solo_learn and name.endswith("_cifar") and "stem_padding" not in arch_kwargs:
        arch_kwargs["stem_padding"] = 2
        logger.info("solo-learn checkpoint: CIFAR stem padding 2, as solo-learn builds it.")
    model = build_encoder(name, **arch_kwargs)
    ckpt.load_strict(model, backbone, source)
    layout = (
        "solo-learn"
        if solo_learn
        else "lightly"
        if lightning and from_sequential
        else "badencoder"
        if prefix == "f.f."
        else _layout_of(prefix, from_sequential)
    )
    logger.info("Loaded %s as %s %s (layout %s, prefix %r).", source, name, arch_kwargs, layout, prefix)
    info = {"arch": name, "arch_kwargs": arch_kwargs, "layout": layout, "key_prefix": prefix}
    return LoadedEncoder(model.eval(), None, info=info)


def _layout_of(prefix: str, from_sequential: bool) -> str:
    names = {
        "module.encoder_q.": "moco_v1_v2",
        "encoder_q.": "moco_v1_v2",
        "module.base_encoder.": "moco_v3",
        "base_encoder.": "moco_v3",
        "module.": "dataparallel",
        "": "plain",
    }
    return names.get(prefix, f"prefix {prefix!r}") + (" (sequential)" if from_sequential else "")
