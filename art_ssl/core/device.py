"""Device selection shared by estimators, pre-training and trainers (ART's ``device_type`` convention)."""

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


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global generators (kornia and dropout draw from them) and return a CPU generator for shuffling."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative int, got {seed!r}.")
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
