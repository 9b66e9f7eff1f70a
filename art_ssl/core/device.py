"""Device selection shared by estimators, pre-training and trainers (ART's ``device_type`` convention). Seeding is
:mod:`art_ssl.core.seeding`'s."""

from __future__ import annotations

import torch
from torch import nn


def resolve_device(device_type: str | torch.device = "gpu") -> torch.device:
    """``"gpu"`` -> the current CUDA device when available, else CPU; ``"cpu"`` -> CPU; a ``torch.device`` as is."""
    if isinstance(device_type, torch.device):
        return device_type
    if device_type not in ("gpu", "cpu"):
        raise ValueError(f"`device_type` must be 'gpu' or 'cpu', got {device_type!r}.")
    if device_type == "gpu" and torch.cuda.is_available():
        return torch.device(f"cuda:{torch.cuda.current_device()}")
    return torch.device("cpu")


def to_memory_format(module: nn.Module, memory_format: torch.memory_format) -> nn.Module:
    """``module.to(memory_format=memory_format)``: its 4-d parameters and buffers in that layout, in place (channels
    last makes convolutions ~1.4x faster on CPU, and on GPU under autocast); returns ``module``."""
    # Module.to accepts the keyword (torch._C._nn._parse_to) but torch's annotated overloads omit it
    return module.to(memory_format=memory_format)  # type: ignore[call-overload]
