"""
Content keys of the audit: a hash of everything that produced a result, so that a results row or a cached
perturbation is reused only by a run that would compute exactly it again.

The encoder is keyed by what was loaded (its architecture, every weight and buffer, input shape, clip values and
preprocessing), never by its file name: two files of one name in different folders differ, one file copied under
another name does not, and however the encoder was loaded (zoo name, file, converted checkpoint) the same weights
with the same preprocessing give the same key. Data is keyed by the arrays the task or the attacker really uses.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, is_dataclass

import numpy as np
import torch

KEY_LENGTH = 20  # hex digits kept in a key: 80 bits, no accidental collision among any number of runs


def hash_json(value: object) -> str:
    """The key of a JSON-serialisable description (dataclasses, tuples and numpy scalars allowed)."""
    text = json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


def _plain(value: object) -> object:
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def array_key(*arrays: np.ndarray) -> str:
    """The key of the contents (dtype, shape and bytes) of ``arrays``."""
    digest = hashlib.blake2b(digest_size=KEY_LENGTH // 2)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.data)
    return digest.hexdigest()


def module_key(model: torch.nn.Module) -> str:
    """The key of a module's architecture (its ``repr``, and its code for TorchScript) and of every tensor of its
    ``state_dict`` (weights and buffers, names, dtypes, shapes, bytes)."""
    digest = hashlib.blake2b(digest_size=KEY_LENGTH // 2)
    digest.update(type(model).__qualname__.encode())
    digest.update(repr(model).encode())
    code = getattr(model, "code", None)  # a TorchScript module: same weights, other code -> other key
    if isinstance(code, str):
        digest.update(code.encode())
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def encoder_key(encoder) -> str:
    """The key of a :class:`~art_ssl.estimators.PyTorchEncoder`: :func:`module_key` of its model plus its loading
    options as the estimator holds them (input shape, clip values, preprocessing operations and their values)."""
    operations = []
    for op in getattr(encoder, "preprocessing_operations", None) or []:
        params = {
            name: np.asarray(getattr(op, name)).tolist() for name in getattr(op, "params", []) if hasattr(op, name)
        }
        operations.append([type(op).__name__, params])
    clip = None if encoder.clip_values is None else np.asarray(encoder.clip_values).tolist()
    return hash_json(
        {
            "model": module_key(encoder.model),
            "input_shape": list(encoder.input_shape),
            "clip": clip,
            "preprocessing": operations,
        }
    )
