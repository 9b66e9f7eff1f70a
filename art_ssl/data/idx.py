"""
MNIST-format (IDX) datasets: Fashion-MNIST, MNIST, KMNIST.

The IDX format (LeCun et al.): big-endian magic ``0x00 0x00 <dtype> <ndim>``, then ``ndim`` uint32 sizes, then the
data. Files may be gzip-compressed (``*.gz``), as the Debian package ``dataset-fashion-mnist`` ships them.
"""

from __future__ import annotations

import gzip
import os
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from art_ssl.data._common import DatasetNotFoundError, check_split, resolve_root, subsample, to_float_nchw

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_IDX_DTYPES: dict[int, npt.DTypeLike] = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_PREFIX = {"train": "train", "test": "t10k"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (plain or ``.gz``) into a numpy array; a malformed file raises ``ValueError``."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES or not 1 <= data[3] <= 4:
        raise ValueError(f"'{path}' is not an IDX file (bad magic number {data[:4].hex()}).")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"'{path}' is truncated: its header needs {header} bytes, the file has {len(data)}.")
    shape = tuple(int(s) for s in np.frombuffer(data[4:header], dtype=">u4"))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"'{path}' is truncated or corrupt: {len(data) - header} data bytes, expected {expected}.")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (root / name).exists():
            return root / name
    raise DatasetNotFoundError(f"'{stem}[.gz]' not found in '{root}'.")


def load_idx_dataset(
    root: str | os.PathLike,
    split: str = "train",
    size: int | tuple[int, int] | None = None,
    n: int | None = None,
    seed: int = 0,
    nb_classes: int | None = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """
    Load an MNIST-format dataset from ``root`` (files ``train-images-idx3-ubyte[.gz]`` etc.).

    :param root: Folder holding the four IDX files.
    :param split: ``"train"`` or ``"test"``.
    :param size: Output side length (e.g. 64) or ``(H, W)``; ``None`` keeps 28x28.
    :param n: Keep a class-balanced, seeded subset of this many samples; ``None`` keeps all.
    :param seed: Seed of the subset.
    :param nb_classes: Labels must lie in ``[0, nb_classes)`` (10 for the MNIST family; ``None``: any >= 0).
    :return: ``x`` float32 (N, 1, H, W) in [0, 1] and ``y`` int64 (N,).
    """
    check_split(split)
    root = Path(root)
    images = read_idx(_find(root, f"{_PREFIX[split]}-images-idx3-ubyte"))
    labels = read_idx(_find(root, f"{_PREFIX[split]}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise ValueError(f"IDX files in '{root}' disagree: images {images.shape}, labels {labels.shape}.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"IDX labels in '{root}' must be integers, got dtype {labels.dtype}.")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or (nb_classes is not None and labels.max() >= nb_classes)):
        raise ValueError(f"IDX labels in '{root}' must lie in [0, {nb_classes}), got [{labels.min()}, {labels.max()}].")
    if images.dtype != np.uint8:  # float images must already be [0, 1] pixels; other integers have no scale
        if not np.issubdtype(images.dtype, np.floating):
            raise ValueError(f"IDX images in '{root}' must be uint8 (or float in [0, 1]), got {images.dtype}.")
        if images.size and (not np.isfinite(images).all() or images.min() < 0 or images.max() > 1):
            raise ValueError(
                f"IDX images in '{root}' are {images.dtype} in [{images.min():.4g}, "
                f"{images.max():.4g}]; float IDX images must lie in [0, 1]."
            )
    images, labels = subsample(images, labels, n, seed)
    return to_float_nchw(images, size), labels


def load_fashion_mnist(
    split: str = "train",
    size: int | tuple[int, int] | None = None,
    root: str | os.PathLike | None = None,
    n: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """
    Fashion-MNIST (Xiao et al., 2017) from IDX files.

    :param split: ``"train"`` (60k) or ``"test"`` (10k).
    :param size: Output side length; the benchmark uses 64 (DESIGN §6); ``None`` keeps 28.
    :param root: Folder with the IDX files; default ``/usr/share/datasets/fashion-mnist`` (Debian package
                 ``dataset-fashion-mnist``).
    :param n: Class-balanced seeded subset size; ``None`` keeps all.
    :param seed: Seed of the subset.
    """
    path = resolve_root(
        root,
        FASHION_MNIST_ROOT,
        "Fashion-MNIST",
        "Install it with `apt-get install dataset-fashion-mnist`, pass `root=` a folder holding the IDX files, "
        "or use `load_fashion_mnist_subset()` (shipped with art_ssl).",
    )
    return load_idx_dataset(path, split, size, n, seed)


def load_mnist(split: str = "train", size=None, root: str | os.PathLike | None = None, n=None, seed: int = 0):
    """MNIST from IDX files in ``root`` (same format and arguments as :func:`load_fashion_mnist`)."""
    path = resolve_root(root, "/usr/share/datasets/mnist", "MNIST", "Pass `root=` a folder holding the IDX files.")
    return load_idx_dataset(path, split, size, n, seed)


def load_kmnist(split: str = "train", size=None, root: str | os.PathLike | None = None, n=None, seed: int = 0):
    """Kuzushiji-MNIST from IDX files in ``root`` (same format and arguments as :func:`load_fashion_mnist`)."""
    if root is None:
        raise DatasetNotFoundError("KMNIST has no default location: pass `root=` a folder holding its IDX files.")
    return load_idx_dataset(resolve_root(root, root, "KMNIST", ""), split, size, n, seed)


def load_fashion_mnist_subset(
    split: str = "train", size: int | tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """
    The Fashion-MNIST subset shipped inside art_ssl: 5,000 class-balanced training and 1,000 test images taken with
    seed 0 from the official splits (``evaluations/make_subset.py``), so the default audit and the tests run
    without the Debian package.

    :param split: ``"train"`` or ``"test"``.
    :param size: Output side length; ``None`` keeps 28.
    """
    check_split(split)
    with resources.files("art_ssl.data").joinpath("fashion_mnist_subset.npz").open("rb") as f:
        arrays = np.load(f)
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"].astype(np.int64)
    return to_float_nchw(images, size), labels
