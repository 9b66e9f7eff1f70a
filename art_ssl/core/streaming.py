"""
Training and evaluation from a dataset read batch by batch (the generic part of streaming data; the readers of
files and folders are in :mod:`art_ssl.data.stream`): :func:`as_dataset` accepts a ``torch.utils.data.Dataset``
whose items are ``image`` or ``(image, label)``, a ``DataLoader`` over one or ART's ``PyTorchDataGenerator``;
:class:`StreamedImages` gives the training loops, which index data with their own seeded permutation, that indexing
over a dataset (it reads each batch's rows, checks them, converts them to float32 on the device), so a run from a
dataset equals the run from the same images as an array, batch for batch. It lives in the core because the SSL
pre-training and the trainers, which may not import the data package, both read through it.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class SizedDataset(Protocol):
    """A map-style dataset with a length, what the readers here index (``torch.utils.data.Dataset`` declares no
    ``__len__``)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


def as_dataset(data: Any, name: str = "generator") -> tuple[SizedDataset, int | None]:
    """
    The dataset behind ``data`` and its loader's batch size (``None`` for a bare dataset): a
    ``torch.utils.data.Dataset``, a ``DataLoader`` or ART's ``PyTorchDataGenerator``. The loader's own sampler is
    not used: the training loops draw their seeded permutation (so results do not depend on the loader).

    :raises TypeError: anything else (naming ``name``).
    """
    loader = getattr(data, "iterator", None) if not isinstance(data, (Dataset, DataLoader)) else None
    if isinstance(loader, DataLoader):  # ART's PyTorchDataGenerator
        # torch types a loader's dataset without __len__; a map-style one (all the loops index) has one
        return cast(SizedDataset, loader.dataset), int(getattr(data, "batch_size", None) or loader.batch_size or 1)
    if isinstance(data, DataLoader):
        return cast(SizedDataset, data.dataset), data.batch_size
    if isinstance(data, Dataset) and hasattr(data, "__len__"):
        return cast(SizedDataset, data), None
    raise TypeError(
        f"`{name}` must be a torch Dataset (with len), a DataLoader or an ART PyTorchDataGenerator, "
        f"got {type(data).__name__}."
    )


def dataset_labels(dataset: SizedDataset, name: str = "generator") -> np.ndarray:
    """All labels of ``dataset``: its ``labels``, ``y`` or ``targets`` attribute, else one pass over its items
    (each image is read once and dropped)."""
    for attr in ("labels", "y", "targets"):
        value = getattr(dataset, attr, None)
        if value is not None:
            return np.asarray(value, dtype=np.int64)
    labels = []
    for i in range(len(dataset)):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise ValueError(f"`{name}`: items must be (image, label) pairs to train a classifier.")
        labels.append(int(item[1]))
    return np.asarray(labels, dtype=np.int64)


def _read_rows(dataset: SizedDataset, rows: np.ndarray) -> np.ndarray:
    """Images of ``rows`` as one float32 array: the dataset's ``read`` when it has one, else its items stacked."""
    if hasattr(dataset, "read"):
        return dataset.read(rows)
    items = [dataset[int(r)] for r in rows]
    images = [item[0] if isinstance(item, (tuple, list)) else item for item in items]
    return np.stack([np.asarray(im, dtype=np.float32) for im in images])


class StreamedImages:
    """
    The part of the ``torch.Tensor`` interface the training loops use on their image tensor (``len``, ``shape``,
    ``dim()``, ``contiguous(memory_format=...)`` and indexing by an index tensor, an array or a slice), over a
    dataset: each index reads only its rows, checks them (float, finite, in ``clip_values``) and returns them as a
    float32 tensor on ``device``.

    :param dataset: A dataset of images (see :func:`as_dataset`).
    :param device: Where batches go.
    :param name: The user's parameter, for error messages.
    :param input_shape: Expected (C, H, W) of one image, or ``None``.
    :param clip_values: Pixel range the batches must lie in, or ``None``.
    """

    def __init__(
        self,
        dataset: SizedDataset,
        device: torch.device | str = "cpu",
        name: str = "generator",
        input_shape: tuple[int, ...] | None = None,
        clip_values: tuple[float, float] | None = (0.0, 1.0),
    ) -> None:
        self.dataset, self.device, self.name, self.clip_values = dataset, torch.device(device), name, clip_values
        self.memory_format = torch.contiguous_format
        if len(dataset) == 0:
            raise ValueError(f"`{name}` is empty.")
        first = self._batch(np.array([0]))
        if first.dim() != 4:
            raise ValueError(f"`{name}`: images must be (C, H, W), got {tuple(first.shape[1:])}.")
        if input_shape is not None and tuple(first.shape[1:]) != tuple(input_shape):
            raise ValueError(f"`{name}`: images must have shape {tuple(input_shape)}, got {tuple(first.shape[1:])}.")
        self.shape = (len(dataset), *first.shape[1:])

    def __len__(self) -> int:
        return len(self.dataset)

    def dim(self) -> int:
        return 4

    def contiguous(self, memory_format: torch.memory_format = torch.contiguous_format) -> StreamedImages:
        """This view, returning batches in ``memory_format`` (as ``Tensor.contiguous``)."""
        view = object.__new__(StreamedImages)
        view.__dict__.update(self.__dict__)
        view.memory_format = memory_format
        return view

    def _batch(self, rows: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(_read_rows(self.dataset, rows), dtype=np.float32))
        if not torch.isfinite(x).all():
            raise ValueError(f"`{self.name}` contains NaN or infinite values.")
        if self.clip_values is not None and (
            x.min() < self.clip_values[0] - 1e-6 or x.max() > self.clip_values[1] + 1e-6
        ):
            raise ValueError(
                f"`{self.name}` pixels must lie in {self.clip_values}, "
                f"got [{float(x.min()):.4g}, {float(x.max()):.4g}]."
            )
        return x

    def __getitem__(self, index: Any) -> torch.Tensor:
        if isinstance(index, slice):
            rows = np.arange(len(self))[index]
        elif isinstance(index, torch.Tensor):
            rows = index.detach().cpu().numpy()
        else:
            rows = np.asarray(index)
        x = self._batch(rows.reshape(-1)).to(self.device, non_blocking=True)
        return x.contiguous(memory_format=self.memory_format)

    def data_checksum(self, chunk: int = 1024) -> list[float]:
        """The checksums :func:`art_ssl.core.checkpoint.data_checksum` takes of an array, read chunk by chunk."""
        total = np.zeros(3)
        offset = 0
        for start in range(0, len(self), chunk):
            t = self[start : start + chunk].detach().double().flatten().cpu()
            weights = (torch.arange(len(t), dtype=torch.float64) + offset).remainder_(997)
            total += [float(t.sum()), float((t * t).sum()), float((t * weights).sum())]
            offset += len(t)
        return [float(offset), *total.tolist()]


def predict_dataset(classifier: Any, data: Any, batch_size: int = 256) -> np.ndarray:
    """
    ``classifier.predict`` (an ART estimator) over a dataset, loader or ``PyTorchDataGenerator``, batch by batch:
    evaluation without holding the test set in memory. Returns the stacked predictions.

    :param classifier: An ART classifier (or anything with ``predict(x, batch_size=...)``).
    :param data: See :func:`as_dataset`.
    :param batch_size: Images read and predicted at a time.
    """
    dataset, _ = as_dataset(data, "data")
    outputs = [
        classifier.predict(_read_rows(dataset, np.arange(start, min(start + batch_size, len(dataset)))), batch_size)
        for start in range(0, len(dataset), batch_size)
    ]
    return np.concatenate(outputs)


def accuracy_on_dataset(classifier: Any, data: Any, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``classifier`` on a labelled dataset, read batch by batch (see :func:`predict_dataset`)."""
    dataset, _ = as_dataset(data, "data")
    return float(np.mean(predict_dataset(classifier, dataset, batch_size).argmax(1) == dataset_labels(dataset, "data")))
