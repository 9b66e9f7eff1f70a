"""Shared pieces of the loaders: resizing, dtype/layout conversion, the missing-dataset error."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class DatasetNotFoundError(FileNotFoundError):
    """Raised when a dataset's files are not on disk; the message says what to install or pass."""


def check_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    """Normalise ``size`` to ``(H, W)`` or ``None`` (keep the native size)."""
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (
        not isinstance(size, tuple)
        or len(size) != 2
        or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in size)
    ):
        raise ValueError(f"`size` must be None, a positive int or a pair of positive ints, got {size!r}.")
    return (int(size[0]), int(size[1]))


def to_float_nchw(images: np.ndarray, size: int | tuple[int, int] | None = None, batch: int = 4096) -> np.ndarray:
    """
    Turn uint8 images (N, H, W) or (N, H, W, C) or (N, C, H, W) into float32 NCHW in [0, 1], resized bilinearly.

    :param images: uint8 array; 3-D is grey-scale, 4-D is channels-last unless dimension 1 has 1 or 3 channels.
    :param size: Output ``(H, W)`` or side length; ``None`` keeps the native size.
    :param batch: Images resized at a time (bounds peak memory).
    """
    import torch
    import torch.nn.functional as F

    out_size = check_size(size)
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[1] not in (1, 3) and images.shape[-1] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    if images.ndim != 4:
        raise ValueError(f"`images` must be 3-D or 4-D, got shape {images.shape}.")
    if images.dtype == np.uint8:
        scale = 255.0
    elif np.issubdtype(images.dtype, np.floating):
        scale = 1.0  # float images are taken as [0, 1] pixels, never rescaled by a guess
        if images.size and not np.isfinite(images).all():
            raise ValueError(f"`images` of dtype {images.dtype} must hold finite pixels, got NaN or inf.")
        if images.size and (images.min() < 0 or images.max() > 1):
            raise ValueError(
                f"`images` of dtype {images.dtype} must hold finite pixels in [0, 1], got "
                f"[{images.min():.4g}, {images.max():.4g}]; scale them first."
            )
    else:
        raise ValueError(f"`images` must be uint8 (0..255) or float in [0, 1], got dtype {images.dtype}.")
    if out_size is None or tuple(images.shape[2:]) == out_size:
        return np.ascontiguousarray(images, dtype=np.float32) / np.float32(scale)
    out = np.empty((images.shape[0], images.shape[1], *out_size), dtype=np.float32)
    for start in range(0, images.shape[0], batch):
        chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + batch], dtype=np.float32) / scale)
        # Upsampling (the benchmark's 28->64) needs no anti-aliasing; downsampling does.
        antialias = out_size[0] < chunk.shape[2] or out_size[1] < chunk.shape[3]
        resized = F.interpolate(chunk, size=out_size, mode="bilinear", align_corners=False, antialias=antialias)
        out[start : start + batch] = resized.clamp_(0.0, 1.0).numpy()
    return out


def resolve_root(root: str | os.PathLike | None, default: str | os.PathLike, what: str, hint: str) -> Path:
    """Return ``root`` (or ``default``) as a Path, or raise :class:`DatasetNotFoundError` with ``hint``."""
    path = Path(root if root is not None else default).expanduser()
    if not path.exists():
        raise DatasetNotFoundError(f"{what} not found at '{path}'. {hint}")
    return path


def check_split(split: str, allowed: tuple[str, ...] = ("train", "test")) -> str:
    if split not in allowed:
        raise ValueError(f"`split` must be one of {allowed}, got {split!r}.")
    return split


def subsample(
    x: np.ndarray, y: np.ndarray, n: int | None, seed: int = 0, stratified: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Take ``n`` samples (class-balanced when ``stratified``) with a seeded generator; ``None`` keeps all."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer))):
        raise TypeError(f"`n` must be None or a positive int, got {n!r}.")
    if n is not None and n <= 0:
        raise ValueError(f"`n` must be positive, got {n}.")
    if n is None or n >= len(y):
        return x, y
    rng = np.random.default_rng(seed)
    if not stratified:
        idx = np.sort(rng.choice(len(y), size=n, replace=False))
        return x[idx], y[idx]
    classes = np.unique(y)
    per_class = np.full(len(classes), n // len(classes))
    per_class[: n % len(classes)] += 1
    idx = np.concatenate(
        [
            rng.choice(np.flatnonzero(y == c), size=min(k, int((y == c).sum())), replace=False)
            for c, k in zip(classes, per_class, strict=True)
        ]
    )
    idx = np.sort(idx)
    return x[idx], y[idx]
