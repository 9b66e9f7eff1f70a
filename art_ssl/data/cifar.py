"""CIFAR-10 from the official python pickles (``cifar-10-batches-py``), read with a restricted unpickler."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from art_ssl.data._common import DatasetNotFoundError, check_split, resolve_root, subsample, to_float_nchw

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickle dicts, lists, bytes and numpy arrays only: a CIFAR batch needs nothing else, and code does."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load '{module}.{name}' from a CIFAR batch file")


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _ArrayOnlyUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch.get(b"labels", batch.get(b"fine_labels")))
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"'{path}' is not a CIFAR-10 python batch: {err}") from err
    if data.dtype != np.uint8 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"'{path}' holds data of dtype {data.dtype} and labels of dtype {labels.dtype}; a CIFAR-10 "
            "batch holds uint8 pixels and integer labels."
        )
    labels = labels.astype(np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (data.shape[0],):
        raise ValueError(f"'{path}' has data {data.shape} and labels {labels.shape}; expected (N, 3072) and (N,).")
    if labels.size and (labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES)):
        raise ValueError(f"'{path}' has labels in [{labels.min()}, {labels.max()}]; CIFAR-10 labels lie in [0, 10).")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(
    split: str = "train",
    size: int | tuple[int, int] | None = None,
    root: str | os.PathLike | None = None,
    n: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """
    CIFAR-10 (Krizhevsky, 2009) from ``root/data_batch_{1..5}`` and ``root/test_batch``.

    :param split: ``"train"`` or ``"test"``.
    :param size: Output side length (the papers resize to 64); ``None`` keeps 32.
    :param root: The ``cifar-10-batches-py`` folder (default ``~/.art_ssl/cifar-10-batches-py``).
    :param n: Class-balanced seeded subset size; ``None`` keeps all.
    :param seed: Seed of the subset.
    :return: ``x`` float32 (N, 3, H, W) in [0, 1] and ``y`` int64 (N,).
    """
    check_split(split)
    path = resolve_root(
        root,
        "~/.art_ssl/cifar-10-batches-py",
        "CIFAR-10",
        "Download and extract cifar-10-python.tar.gz and pass `root=` its 'cifar-10-batches-py' folder.",
    )
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    missing = [name for name in names if not (path / name).exists()]
    if missing:
        raise DatasetNotFoundError(f"CIFAR-10 batch files {missing} not found in '{path}'.")
    parts = [_read_batch(path / name) for name in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    images, labels = subsample(images, labels, n, seed)
    return to_float_nchw(images, size), labels
