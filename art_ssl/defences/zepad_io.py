"""
A trained ZePAD classifier as one ``.safetensors`` file: every branch's encoder and head (the fused
:class:`~art_ssl.defences.zepad_model.ZePADModel`'s state dict) and, as metadata strings, what rebuilds it: each
encoder's architecture (:func:`art_ssl.zoo.metadata.arch_of`), each head's layer sizes, the fusion rule and its
sharpness, the input format and the normalisation. Loading runs no code from the file (tensors and JSON only).

    >>> save_zepad(trainer.get_classifier(), "zepad.safetensors", info={"task": "digits"})
    >>> classifier = load_zepad("zepad.safetensors", device_type="cpu")   # an ART PyTorchClassifier
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_ssl.core.fusion import FUSIONS
from art_ssl.defences.zepad_model import ZePADModel, is_zepad_classifier
from art_ssl.estimators.classifier import EncoderWithHead, mean_std_of
from art_ssl.models import build_encoder
from art_ssl.models.heads import MLPHead
from art_ssl.zoo import _per_channel
from art_ssl.zoo.metadata import PREFIX, arch_of

ZEPAD_KEY = PREFIX + "zepad"
FORMAT_VERSION = 1


def _head_spec(head: nn.Module) -> dict[str, Any]:
    """The constructor arguments of an :class:`MLPHead`, read off its layers."""
    if not isinstance(head, MLPHead):
        raise ValueError(f"ZePAD's branch heads must be MLPHead (ZePADTrainer's), not {type(head).__name__}")
    linears = [m for m in head.net if isinstance(m, nn.Linear)]
    dropouts = [m.p for m in head.net if isinstance(m, nn.Dropout)]
    return {
        "in_features": linears[0].in_features,
        "nb_classes": linears[-1].out_features,
        "hidden": [m.out_features for m in linears[:-1]],
        "dropout": float(dropouts[0]) if dropouts else 0.0,
        "normalize_input": bool(head.normalize_input),
    }


def _branch_spec(branch: nn.Module) -> dict[str, Any]:
    if not isinstance(branch, EncoderWithHead):
        raise ValueError(f"ZePAD's branches must be EncoderWithHead, not {type(branch).__name__}")
    arch, arch_kwargs = arch_of(branch.encoder)
    return {"arch": arch, "arch_kwargs": arch_kwargs, "head": _head_spec(branch.head)}


def save_zepad(classifier: PyTorchClassifier, path: str | os.PathLike, info: dict[str, str] | None = None) -> Path:
    """
    Write a fused ZePAD classifier (:meth:`ZePADTrainer.get_classifier`) to ``path``.

    :param classifier: ART ``PyTorchClassifier`` over a :class:`ZePADModel` whose branches are ResNet encoders with
                       :class:`MLPHead` heads (what :class:`~art_ssl.defences.trainer.ZePADTrainer` builds).
    :param path: Output ``.safetensors`` file.
    :param info: Free-form strings stored beside (e.g. task, test accuracy); keys must not be ``"zepad"``.
    :return: The path written.
    :raises ValueError: not a ZePAD classifier, an encoder that is not one of art_ssl's ResNets, a path that is not
                        ``.safetensors``.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"`path` must name a .safetensors file, got '{path}'.")
    if not is_zepad_classifier(classifier):
        raise ValueError("`classifier` must be a PyTorchClassifier over a ZePADModel (ZePADTrainer.get_classifier()).")
    info = dict(info or {})
    if "zepad" in info or not all(isinstance(k, str) and isinstance(v, str) for k, v in info.items()):
        raise ValueError("`info` must map str to str and must not use the key 'zepad'.")
    model: ZePADModel = classifier.model
    mean_std = mean_std_of(classifier)
    spec = {
        "format_version": FORMAT_VERSION,
        "mpae": [_branch_spec(b) for b in model.mpae],
        "bmp": None if model.bmp is None else _branch_spec(model.bmp),
        "fusion": model.fusion,
        "k": float(model.k),
        "nb_classes": int(classifier.nb_classes),
        "input_shape": [int(s) for s in classifier.input_shape],
        "clip_values": None if classifier.clip_values is None else np.asarray(classifier.clip_values).tolist(),
        "mean": None if mean_std is None else mean_std[0],
        "std": None if mean_std is None else mean_std[1],
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {PREFIX + k: v for k, v in info.items()}
    metadata[ZEPAD_KEY] = json.dumps(spec)
    save_file(state, str(path), metadata=metadata)
    return path


def read_zepad_info(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a file written by :func:`save_zepad`: ``"zepad"`` (the rebuild spec) and the ``info`` strings.

    :raises ValueError: not a safetensors file, or not one :func:`save_zepad` wrote.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"'{path}' is not a valid safetensors file: {err}") from err
    if ZEPAD_KEY not in raw:
        raise ValueError(f"'{path}' holds no ZePAD model (no '{ZEPAD_KEY}' metadata): write it with save_zepad.")
    try:
        spec = json.loads(raw[ZEPAD_KEY])
    except json.JSONDecodeError as err:
        raise ValueError(f"'{path}' has malformed ZePAD metadata: {err}") from err
    out: dict[str, Any] = {k[len(PREFIX) :]: v for k, v in raw.items() if k.startswith(PREFIX) and k != ZEPAD_KEY}
    out["zepad"] = spec
    return out


def _build_branch(spec: Any, where: str) -> EncoderWithHead:
    try:
        head = spec["head"]
        encoder = build_encoder(spec["arch"], **spec["arch_kwargs"])
        mlp = MLPHead(head["in_features"], head["nb_classes"], head["hidden"], head["dropout"], head["normalize_input"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{where}: cannot rebuild the branch from its metadata ({type(err).__name__}: {err})") from err
    return EncoderWithHead(encoder, mlp)


def load_zepad(path: str | os.PathLike, device_type: str = "cpu") -> PyTorchClassifier:
    """
    Rebuild the fused ZePAD classifier that :func:`save_zepad` wrote (in eval mode).

    :param path: The ``.safetensors`` file.
    :param device_type: ``"cpu"`` or ``"gpu"``.
    :return: ART ``PyTorchClassifier`` over the :class:`ZePADModel`; ``ZePADDetector`` takes it as is.
    :raises ValueError: a file that is not a ZePAD file, malformed metadata, or weights that do not fit it.
    """
    from safetensors.torch import load_file

    if device_type not in ("cpu", "gpu"):
        raise ValueError(f"`device_type` must be 'cpu' or 'gpu', got {device_type!r}.")
    spec = read_zepad_info(path)["zepad"]
    try:
        if spec["format_version"] != FORMAT_VERSION:
            raise ValueError(f"format_version {spec['format_version']!r}, this art_ssl reads {FORMAT_VERSION}")
        if spec["fusion"] not in FUSIONS:
            raise ValueError(f"fusion {spec['fusion']!r} is not one of {FUSIONS}")
        mpae_specs, bmp_spec = list(spec["mpae"]), spec["bmp"]
        input_shape = tuple(int(s) for s in spec["input_shape"])
        nb_classes, k = int(spec["nb_classes"]), float(spec["k"])
        clip, mean, std = spec["clip_values"], spec["mean"], spec["std"]
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"'{path}' has malformed ZePAD metadata: {err}") from err
    if not mpae_specs:
        raise ValueError(f"'{path}' has malformed ZePAD metadata: no MPAE branch")
    mpae: list[nn.Module] = [_build_branch(s, f"'{path}' MPAE branch {i}") for i, s in enumerate(mpae_specs)]
    bmp = None if bmp_spec is None else _build_branch(bmp_spec, f"'{path}' BMP branch")
    model = ZePADModel(mpae, bmp, spec["fusion"], k)
    try:
        model.load_state_dict(load_file(str(path)), strict=True)
    except RuntimeError as err:
        raise ValueError(f"'{path}': the weights do not fit the model its metadata describes: {err}") from err
    try:
        channels = input_shape[0]
        preprocessing = None if mean is None else (_per_channel(mean, channels), _per_channel(std, channels))
    except (TypeError, ValueError) as err:
        raise ValueError(f"'{path}' has malformed ZePAD metadata (mean/std): {err}") from err
    return PyTorchClassifier(
        model.eval(),
        loss=nn.CrossEntropyLoss(),
        input_shape=input_shape,
        nb_classes=nb_classes,
        clip_values=None if clip is None else tuple(clip),
        preprocessing=preprocessing,
        device_type=device_type,
    )
