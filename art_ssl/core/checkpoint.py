"""
Resumable training: the epoch loops (SSL pre-training, every trainer) save their whole state after each epoch and, when
started again with the same ``checkpoint_dir``, continue from the last saved epoch with the result an uninterrupted
run would have had (same weights, optimiser moments, shuffling and augmentation random streams).

A checkpoint carries a fingerprint of the run (settings and a checksum of the data); resuming with other settings or
other data raises ``ValueError`` instead of silently continuing someone else's run. Files are written atomically
(temporary file, then ``os.replace``), so a kill during the write leaves the previous checkpoint intact, and read
with ``torch.load(weights_only=True)`` (no code runs from the file).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch


def checkpoint_path(checkpoint_dir: str | os.PathLike | None, name: str) -> Path | None:
    """``checkpoint_dir / name`` (the folder created), or ``None`` when checkpointing is off.

    :raises TypeError: ``checkpoint_dir`` is not a path.
    """
    if checkpoint_dir is None:
        return None
    if not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise TypeError(f"`checkpoint_dir` must be a path or None, got {type(checkpoint_dir).__name__}.")
    folder = Path(checkpoint_dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"`checkpoint_dir` {str(folder)!r} exists and is not a folder.")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def data_checksum(*arrays: np.ndarray | torch.Tensor) -> list[float]:
    """Cheap checksums of the training data (size, sum, sum of squares, weighted sum), stored in the fingerprint."""
    sums: list[float] = []
    for a in arrays:
        if hasattr(a, "data_checksum"):  # streamed images (art_ssl.data.stream.StreamedImages): read chunk by chunk
            sums += a.data_checksum()
            continue
        t = torch.as_tensor(a).detach().double().flatten().cpu()
        weights = torch.arange(len(t), dtype=torch.float64).remainder_(997)
        sums += [float(len(t)), float(t.sum()), float((t * t).sum()), float((t * weights).sum())]
    return sums


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path | None, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """
    The state saved at ``path``, or ``None`` when there is none.

    :raises ValueError: the checkpoint was written by a run with another fingerprint.
    """
    if path is None or not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved = state.get("fingerprint")
    if saved != fingerprint:
        diff = sorted(k for k in set(fingerprint) | set(saved or {}) if (saved or {}).get(k) != fingerprint.get(k))
        raise ValueError(
            f"`checkpoint_dir`: {str(path)!r} was written by a run with other settings or data (differs in {diff}); "
            "use another folder or delete it to start afresh."
        )
    return state


def rng_state() -> dict[str, Any]:
    """torch's global random state (CPU and, where present, CUDA): kornia augmentations and dropout draw from it."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
