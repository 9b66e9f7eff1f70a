"""Device selection shared by estimators, pre-training and trainers (ART's ``device_type`` convention). Seeding is
:mod:`art_ssl.core.seeding`'s."""

from __future__ import annotations

import torch


def resolve_device(device_type: str | torch.device = "gpu") -> torch.device:
    """``"gpu"`` -> the current CUDA device when available, else CPU; ``"cpu"`` -> CPU; a ``torch.device`` as is."""
    if isinstance(device_type, torch.device):
        return device_type
    if device_type not in ("gpu", "cpu"):
        raise ValueError(f"`device_type` must be 'gpu' or 'cpu', got {device_type!r}.")
    if device_type == "gpu" and torch.cuda.is_available():
        return torch.device(f"cuda:{torch.cuda.current_device()}")
    return torch.device("cpu")
