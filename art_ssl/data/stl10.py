"""STL-10 from the official binary files (``stl10_binary``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from art_ssl.data._common import DatasetNotFoundError, check_split, resolve_root, subsample, to_float_nchw

STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
_SIDE = 96


def _read_images(path: Path) -> np.ndarray:
    raw = np.fromfile(path, dtype=np.uint8)
    per_image = 3 * _SIDE * _SIDE
    if raw.size == 0 or raw.size % per_image:
        raise ValueError(f"'{path}' holds {raw.size} bytes, not a whole number of 3x96x96 STL-10 images.")
    # The files are column-major per channel: (N, C, W, H); transpose to (N, C, H, W).
    return raw.reshape(-1, 3, _SIDE, _SIDE).transpose(0, 1, 3, 2)


def load_stl10(
    split: str = "train",
    size: int | tuple[int, int] | None = None,
    root: str | os.PathLike | None = None,
    n: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """
    STL-10 (Coates et al., 2011) from ``root/{train,test,unlabeled}_X.bin`` and ``root/{train,test}_y.bin``.

    :param split: ``"train"``, ``"test"`` or ``"unlabeled"`` (labels are -1).
    :param size: Output side length (the papers resize to 64); ``None`` keeps 96.
    :param root: The ``stl10_binary`` folder (default ``~/.art_ssl/stl10_binary``).
    :param n: Seeded subset size (class-balanced for labelled splits); ``None`` keeps all.
    :param seed: Seed of the subset.
    :return: ``x`` float32 (N, 3, H, W) in [0, 1] and ``y`` int64 (N,), labels 0..9.
    """
    check_split(split, ("train", "test", "unlabeled"))
    path = resolve_root(
        root,
        "~/.art_ssl/stl10_binary",
        "STL-10",
        "Download and extract stl10_binary.tar.gz and pass `root=` its 'stl10_binary' folder.",
    )
    x_file = path / f"{split}_X.bin"
    if not x_file.exists():
        raise DatasetNotFoundError(f"'{x_file.name}' not found in '{path}'.")
    images = _read_images(x_file)
    if split == "unlabeled":
        labels = np.full(len(images), -1, dtype=np.int64)
        images, labels = subsample(images, labels, n, seed, stratified=False)
    else:
        y_file = path / f"{split}_y.bin"
        if not y_file.exists():
            raise DatasetNotFoundError(f"'{y_file.name}' not found in '{path}'.")
        labels = np.fromfile(y_file, dtype=np.uint8).astype(np.int64) - 1  # stored as 1..10
        if labels.shape != (len(images),) or labels.min() < 0 or labels.max() > 9:
            raise ValueError(f"'{y_file}' does not hold one label in 1..10 per image of '{x_file.name}'.")
        images, labels = subsample(images, labels, n, seed)
    return to_float_nchw(images, size), labels
