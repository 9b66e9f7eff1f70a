"""
Reading the checkpoint files public SSL releases ship, without running their code, and finding the backbone in them.

Safety: a ``.pt``/``.pth``/``.pth.tar``/``.ckpt`` file is a pickle, and unpickling can call any function. Such files
are read only with ``torch.load(weights_only=True)`` (tensors, containers and primitive types), plus the short
allow-list :data:`SAFE_GLOBALS` of plain-data classes that real checkpoints carry in their hyper-parameters. A file
that names anything else is refused with the globals it names; it is never retried with ``weights_only=False``.
TorchScript archives hold code (their ``code/`` entries are compiled and run on load): they are recognised from the
archive's entries, before anything is deserialised, and refused unless the caller opts in with ``trust_code``.

Layouts (the prefix is detected; ``key_prefix`` overrides):

===========================================  ===================================================================
solo-learn (Lightning ``.ckpt``)             ``state_dict`` -> ``backbone.`` (``encoder.`` in old releases)
lightly (Lightning ``.ckpt``)                ``state_dict`` -> ``backbone.N`` (``Sequential(*children[:-1])``)
MoCo v1/v2 (``.pth.tar``)                    ``state_dict`` -> ``module.encoder_q.`` (``encoder_k``, ``queue`` ignored)
MoCo v3 (``.pth.tar``)                       ``state_dict`` -> ``module.base_encoder.`` (``momentum_encoder`` ignored)
BadEncoder (``.pth``)                        ``state_dict`` -> ``f.f.N`` (children of ResNet without max-pool/fc)
DataParallel / plain state dict / torchvision  ``module.`` / no prefix
===========================================  ===================================================================
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)


class HyperParameters(dict):
    """Inert stand-in for Lightning's ``AttributeDict`` (a ``dict`` subclass holding hyper-parameters)."""


# Plain-data classes real checkpoints carry (MoCo's and BadEncoder's ``args``, Lightning's ``hparams``). Each one only
# stores attributes or items on load; none runs code.
SAFE_GLOBALS: list = [
    argparse.Namespace,
    (HyperParameters, "pytorch_lightning.utilities.parsing.AttributeDict"),
    (HyperParameters, "lightning.fabric.utilities.data.AttributeDict"),
    (HyperParameters, "lightning_fabric.utilities.data.AttributeDict"),
]

PICKLE_SUFFIXES = (".pt", ".pth", ".tar", ".ckpt", ".bin")

# Prefixes of the backbone inside a checkpoint's state dict, most specific first.
PREFIXES = (
    "module.encoder_q.",
    "module.base_encoder.",
    "encoder_q.",
    "base_encoder.",
    "module.backbone.",
    "backbone.",
    "module.encoder.",
    "encoder.",
    "f.f.",
    "module.",
    "model.",
    "",
)
HEAD_KEYS = ("fc.",)  # the classifier / projection MLP torchvision-style encoders keep as ``fc``

# torchvision ResNet children in order; an ``nn.Sequential`` of them keeps only their index as key name.
_CHILDREN = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool")


class UnsafeCheckpointError(ValueError):
    """The file would run code when loaded (a pickle naming functions or classes, or TorchScript)."""


def is_torchscript_archive(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TorchScript archive (a zip with compiled ``code/``), judged from its entry names only."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(re.search(r"(^|/)code/", n) or n.endswith("/constants.pkl") or n == "constants.pkl" for n in names)


def read_pickled(path: str | os.PathLike) -> Any:
    """
    Unpickle a checkpoint with ``torch.load(weights_only=True)`` and the :data:`SAFE_GLOBALS` allow-list only.

    :raises UnsafeCheckpointError: the file is TorchScript, or its pickle names a function or class outside the
                                   allow-list (listed in the message, with how to convert the file).
    :raises ValueError: the file is not a readable torch checkpoint.
    """
    path = Path(path)
    if is_torchscript_archive(path):
        raise UnsafeCheckpointError(
            f"'{path}' is a TorchScript archive: loading it compiles and runs the code stored in the file. Load it "
            "only if you trust its author, with trust_code=True (CLI: --trust-code)."
        )
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception:  # noqa: BLE001 - only used to improve the message
            names = []
        allowed = {g[1] if isinstance(g, tuple) else f"{g.__module__}.{g.__qualname__}" for g in SAFE_GLOBALS}
        names = [n for n in names if n not in allowed] or ["(see below)"]
        raise UnsafeCheckpointError(
            f"Refused '{path}': its pickle names {names}, which torch.load would import and call, so loading it could "
            "run arbitrary code. art_ssl only reads weights (torch.load(weights_only=True)). If you trust the file, "
            'convert it once, in a throwaway environment, to a plain state dict: python -c "import torch; '
            f"c = torch.load('{path.name}', weights_only=False); torch.save(c.get('state_dict', c), 'clean.pth')\" "
            f"then load clean.pth (or art-ssl convert clean.pth --arch ... --out enc.safetensors). Detail: {err}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise ValueError(f"'{path}' is not a readable torch checkpoint: {err}") from err


def find_state_dict(obj: Any) -> tuple[dict[str, torch.Tensor], str]:
    """
    The tensors of a loaded checkpoint and where they were: ``state_dict`` (Lightning, MoCo, BadEncoder), ``model``,
    ``teacher`` or the object itself (a plain state dict). Non-tensor entries are dropped.
    """
    if not isinstance(obj, dict):
        raise ValueError(f"The checkpoint holds a {type(obj).__name__}, not a state dict.")
    for container in ("state_dict", "model", "teacher", "net"):
        inner = obj.get(container)
        if isinstance(inner, dict) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            return {k: v for k, v in inner.items() if isinstance(v, torch.Tensor)}, container
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"No tensors found in the checkpoint (top-level keys: {sorted(obj)[:10]}).")
    return tensors, "top level"


def strip_prefix(state: dict[str, torch.Tensor], key_prefix: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """
    The backbone's tensors with their prefix removed, and the prefix. With ``key_prefix=None`` the first of
    :data:`PREFIXES` under which a stem convolution is found wins; keys outside the prefix (projectors, classifiers,
    momentum encoders, queues) are dropped, as are a torchvision encoder's ``fc`` head keys.

    :raises ValueError: no key starts with ``key_prefix``, or no backbone is found.
    """
    if key_prefix is not None:
        if not isinstance(key_prefix, str):
            raise TypeError(f"`key_prefix` must be a string, got {type(key_prefix).__name__}.")
        candidates: tuple[str, ...] = (key_prefix,)
        if not any(k.startswith(key_prefix) for k in state):
            raise ValueError(f"No key starts with `key_prefix` {key_prefix!r}; keys look like {sorted(state)[:6]}.")
    else:
        candidates = PREFIXES
    for prefix in candidates:
        sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if key_prefix is not None or _has_stem(sub):
            return {k: v for k, v in sub.items() if not k.startswith(HEAD_KEYS)}, prefix
    raise ValueError(
        "No encoder backbone recognised in the checkpoint (looked for a stem convolution under the prefixes "
        f"{list(PREFIXES)}); keys look like {sorted(state)[:8]}. Pass `key_prefix` (CLI: --key-prefix)."
    )


def _has_stem(sub: dict[str, torch.Tensor]) -> bool:
    first = sub.get("conv1.weight", sub.get("stem.0.weight", sub.get("0.weight")))
    return first is not None and first.ndim == 4


def sequential_to_torchvision(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], bool]:
    """
    Rename an ``nn.Sequential`` of torchvision ResNet children (``0.weight``, ``4.0.conv1.weight``) to torchvision's
    names. BadEncoder builds its CIFAR encoder from the children without the max-pool (``f.f.3`` is ``layer1``);
    lightly from all but ``fc`` (``backbone.4`` is ``layer1``). Which one is read off index 3: a residual stage
    has weights there, a max-pool has none. Returns the renamed dict and whether renaming happened.
    """
    if not state or not all(re.match(r"^\d+\.", k) for k in state):
        return state, False
    has_maxpool = not any(k.startswith("3.") for k in state)
    children = _CHILDREN if has_maxpool else tuple(c for c in _CHILDREN if c != "maxpool")
    out = {}
    for key, value in state.items():
        index, _, rest = key.partition(".")
        if int(index) >= len(children):
            raise ValueError(f"Sequential key {key!r} has no torchvision ResNet counterpart.")
        out[f"{children[int(index)]}.{rest}"] = value
    return out, True


def infer_arch(state: dict[str, torch.Tensor]) -> tuple[str, dict[str, Any]]:
    """
    Architecture of a backbone from its key names and shapes: the zoo's ResNet (``stem.0``), or a torchvision
    ResNet whose depth follows from ``layer3``'s blocks and bottlenecks, and whose stem from ``conv1``'s kernel.
    The zoo ResNet's stem stride cannot be read from weights: files without art_ssl metadata get the zoo's (2).
    """
    from art_ssl.models import ZOO_RESNET
    from art_ssl.zoo import ZOO_ARCH

    if "stem.0.weight" in state:
        stem = state["stem.0.weight"]
        kwargs = {**ZOO_ARCH[1], "in_channels": int(stem.shape[1]), "width": int(stem.shape[0])}
        logger.warning(
            "No art_ssl metadata: assuming the zoo ResNet's stem stride %d (set arch to override).",
            kwargs["stem_stride"],
        )
        return ZOO_RESNET, kwargs
    if "conv1.weight" not in state:
        raise ValueError(f"Cannot tell the architecture from keys {sorted(state)[:6]}; pass `arch`.")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"layer3\.(\d+)\.", k))}
    bottleneck = "layer1.0.conv3.weight" in state
    depth = 50 if bottleneck else (34 if len(blocks) == 6 else 18)
    conv1 = state["conv1.weight"]
    name = f"resnet{depth}" + ("_cifar" if conv1.shape[-1] == 3 else "")
    return name, {"in_channels": int(conv1.shape[1])}


def parse_arch(spec: str) -> tuple[str, dict[str, Any]]:
    """``"resnet18_cifar"`` or ``"zoo_resnet18:width=32,stem_stride=1"`` -> (name, constructor keyword arguments)."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"`arch` must be an architecture name, got {spec!r}.")
    name, _, rest = spec.partition(":")
    kwargs: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not value.lstrip("-").isdigit():
            raise ValueError(f"`arch` options must be NAME=INT, got {item!r} in {spec!r}.")
        kwargs[key.strip()] = int(value)
    return name, kwargs


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """
    Load ``state`` into ``model``, or fail listing every missing, unexpected and mis-shaped backbone key (never a
    partial load). BatchNorm's ``num_batches_tracked`` counters, absent from old checkpoints, may be missing.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        raise ValueError(
            f"The weights in {source} do not fit the architecture: missing {_few(missing)}, unexpected "
            f"{_few(unexpected)}, wrong shape {_few(shapes)}. Check `arch` and `key_prefix`."
        )
    model.load_state_dict(state, strict=False)


def _few(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}] ({len(items)})"
