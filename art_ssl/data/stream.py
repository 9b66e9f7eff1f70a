"""
Streaming data: images read batch by batch from a dataset instead of one array in memory, for training
(:meth:`EncoderHeadTrainer.fit_generator <art_ssl.defences.trainer.base.EncoderHeadTrainer.fit_generator>`,
:func:`art_ssl.ssl.pretrain` with a dataset) and evaluation (:func:`predict_dataset`).

- :class:`ArrayDataset`: a numpy array or a memory-mapped one (:func:`memmap_dataset` over a ``.npy`` file, e.g.
  written once by :func:`save_npy`); a batch is one sorted fancy index, so only its rows are read from disk.
- :func:`stl10_dataset`: STL-10's binary files mapped as they are (no conversion).
- :class:`ImageFolderDataset`: ``root/<class>/<image>``, each image decoded when its batch is read.
- Any ``torch.utils.data.Dataset`` whose items are ``image`` or ``(image, label)``, a ``DataLoader`` over one, or
  ART's ``PyTorchDataGenerator`` (its loader's dataset is used): see :func:`as_dataset`.

The training loops index data with the permutation of their own seeded generator; :class:`StreamedImages` gives
them that indexing over a dataset (it reads the rows of each batch, checks them, converts them to float32 on the
device), so a run from a dataset equals the run from the same images as an array, batch for batch. That generic
part (:class:`StreamedImages`, :func:`as_dataset`, :func:`predict_dataset`, ...) lives in
:mod:`art_ssl.core.streaming`, where the trainers and SSL pre-training may import it, and is re-exported here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from art_ssl.core.streaming import (  # the generic part, re-exported (__all__)
    StreamedImages,
    accuracy_on_dataset,
    as_dataset,
    dataset_labels,
    predict_dataset,
)
from art_ssl.data._common import check_size, resolve_root, to_float_nchw


class ArrayDataset(Dataset):
    """
    Images (N, C, H, W) in a numpy array, possibly memory-mapped, with optional labels; nothing is read until a
    batch is asked for. Counts what it reads (:attr:`rows_read`, :attr:`largest_read`).

    :param x: uint8 (0..255) or float ([0, 1]) images, (N, C, H, W).
    :param y: Integer labels (N,), or ``None``.
    :param size: Side length or ``(H, W)`` to resize each batch to; ``None`` keeps the stored size.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray | None = None, size: int | tuple[int, int] | None = None) -> None:
        if not isinstance(x, np.ndarray) or x.ndim != 4:
            raise ValueError(f"`x` must be a numpy array (N, C, H, W), got {getattr(x, 'shape', type(x).__name__)}.")
        if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"`x` must hold uint8 or float pixels, got dtype {x.dtype}.")
        if y is not None and (not isinstance(y, np.ndarray) or y.shape != (len(x),)):
            raise ValueError(f"`y` must be a numpy array of {len(x)} labels, got {getattr(y, 'shape', y)!r}.")
        self.x, self.y, self.size = x, None if y is None else np.asarray(y, dtype=np.int64), check_size(size)
        self.rows_read, self.largest_read = 0, 0

    def __len__(self) -> int:
        return len(self.x)

    @property
    def shape(self) -> tuple[int, ...]:
        """(N, C, H, W) of the images as read (after resizing)."""
        return (len(self.x), self.x.shape[1], *(self.size or self.x.shape[2:]))

    @property
    def labels(self) -> np.ndarray | None:
        return self.y

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Float32 images of ``rows`` (in that order), read with one sorted index: only those rows leave the disk."""
        rows = np.asarray(rows, dtype=np.int64)
        unique, inverse = np.unique(rows, return_inverse=True)
        self.rows_read += len(unique)
        self.largest_read = max(self.largest_read, len(unique))
        return to_float_nchw(np.asarray(self.x[unique]), self.size)[inverse]

    def __getitem__(self, index: int) -> Any:
        image = torch.from_numpy(self.read(np.array([index]))[0])
        return image if self.y is None else (image, int(self.y[index]))


def save_npy(path: str | os.PathLike, x: np.ndarray) -> Path:
    """Write ``x`` to a ``.npy`` file that :func:`memmap_dataset` maps (e.g. a data set converted once, as uint8)."""
    path = Path(path)
    np.save(path, x)
    return path


def memmap_dataset(
    x_path: str | os.PathLike,
    y_path: str | os.PathLike | None = None,
    size: int | tuple[int, int] | None = None,
) -> ArrayDataset:
    """
    An :class:`ArrayDataset` over a ``.npy`` file mapped read-only (``numpy.load(mmap_mode="r")``: no pickle is
    run, nothing is read until a batch is).

    :param x_path: ``.npy`` file of images (N, C, H, W), uint8 or float in [0, 1].
    :param y_path: ``.npy`` file of labels (N,), or ``None``.
    :param size: Resize each batch to this side; ``None`` keeps the stored size.
    """
    x = np.load(x_path, mmap_mode="r", allow_pickle=False)
    y = None if y_path is None else np.load(y_path, allow_pickle=False)
    return ArrayDataset(x, y, size)


def stl10_dataset(
    split: str = "train", size: int | tuple[int, int] | None = None, root: str | os.PathLike | None = None
) -> ArrayDataset:
    """
    STL-10's binary file mapped read-only (the 100,000 unlabelled 96x96 images are 2.8 GB as uint8, 11 GB as
    float32): an :class:`ArrayDataset` whose batches are read, transposed and resized when asked for. Same images and
    labels as :func:`art_ssl.data.load_stl10` (labels -1 for ``"unlabeled"``).

    :param split: ``"train"``, ``"test"`` or ``"unlabeled"``.
    :param size: Output side length; ``None`` keeps 96.
    :param root: The ``stl10_binary`` folder (default ``~/.art_ssl/stl10_binary``).
    """
    from art_ssl.data._common import DatasetNotFoundError, check_split

    check_split(split, ("train", "test", "unlabeled"))
    path = resolve_root(root, "~/.art_ssl/stl10_binary", "STL-10", "Pass `root=` the 'stl10_binary' folder.")
    x_file = path / f"{split}_X.bin"
    if not x_file.exists():
        raise DatasetNotFoundError(f"'{x_file.name}' not found in '{path}'.")
    per_image = 3 * 96 * 96
    if x_file.stat().st_size == 0 or x_file.stat().st_size % per_image:
        raise ValueError(f"'{x_file}' is not a whole number of 3x96x96 STL-10 images.")
    # column-major per channel on disk, (N, C, W, H): a transposed view, still mapped
    images = np.memmap(x_file, dtype=np.uint8, mode="r").reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
    if split == "unlabeled":
        return ArrayDataset(images, np.full(len(images), -1, dtype=np.int64), size)
    y_file = path / f"{split}_y.bin"
    if not y_file.exists():
        raise DatasetNotFoundError(f"'{y_file.name}' not found in '{path}'.")
    labels = np.fromfile(y_file, dtype=np.uint8).astype(np.int64) - 1  # stored as 1..10
    if labels.shape != (len(images),) or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"'{y_file}' does not hold one label in 1..10 per image of '{x_file.name}'.")
    return ArrayDataset(images, labels, size)


class ImageFolderDataset(Dataset):
    """
    ``root/<class>/<image>`` (classes sorted by name, as :func:`art_ssl.data.load_image_folder`), listed at
    construction and decoded one image at a time when read.

    :param root: Folder whose sub-folders are the classes.
    :param size: Output side length or ``(H, W)`` (required: images of a folder may differ in size).
    :param mode: Pillow mode, ``"RGB"`` or ``"L"``.
    """

    def __init__(self, root: str | os.PathLike, size: int | tuple[int, int], mode: str = "RGB") -> None:
        from art_ssl.data.folder import IMAGE_EXTENSIONS

        if mode not in ("RGB", "L"):
            raise ValueError(f"`mode` must be 'RGB' or 'L', got {mode!r}.")
        out_size = check_size(size)
        if out_size is None:
            raise ValueError("`size` is required for a streamed image folder.")
        path = resolve_root(root, root, "Image folder", "Pass `root=` a folder with one sub-folder per class.")
        self.classes = sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
        self.files: list[Path] = []
        labels: list[int] = []
        for label, name in enumerate(self.classes):
            for file in sorted((path / name).iterdir()):
                if file.suffix.lower() in IMAGE_EXTENSIONS:
                    self.files.append(file)
                    labels.append(label)
        if not self.files:
            raise ValueError(f"`root` '{path}' holds no images with extensions {IMAGE_EXTENSIONS}.")
        self.y, self.size, self.mode = np.asarray(labels, dtype=np.int64), out_size, mode

    def __len__(self) -> int:
        return len(self.files)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.files), 3 if self.mode == "RGB" else 1, *self.size)

    @property
    def labels(self) -> np.ndarray:
        return self.y

    def read(self, rows: np.ndarray) -> np.ndarray:
        from PIL import Image

        images = []
        for row in np.asarray(rows, dtype=np.int64):
            with Image.open(self.files[row]) as opened:
                img = opened.convert(self.mode)
                if img.size != (self.size[1], self.size[0]):
                    img = img.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
                images.append(np.asarray(img, dtype=np.uint8))
        stacked = np.stack(images)
        return to_float_nchw(stacked[:, None] if self.mode == "L" else stacked)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.read(np.array([index]))[0]), int(self.y[index])


__all__ = [
    "ArrayDataset",
    "ImageFolderDataset",
    "StreamedImages",
    "accuracy_on_dataset",
    "as_dataset",
    "dataset_labels",
    "memmap_dataset",
    "predict_dataset",
    "save_npy",
    "stl10_dataset",
]
