"""Downstream tasks: a train/test split of a dataset at one resolution, by name."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from art_ssl.data._common import check_size, subsample
from art_ssl.data.cifar import load_cifar10
from art_ssl.data.digits import load_digits
from art_ssl.data.idx import load_fashion_mnist, load_fashion_mnist_subset, load_kmnist, load_mnist
from art_ssl.data.stl10 import load_stl10

_LOADERS = {
    "fashion_mnist": load_fashion_mnist,
    "mnist": load_mnist,
    "kmnist": load_kmnist,
    "cifar10": load_cifar10,
    "stl10": load_stl10,
}
TASKS = ("fashion_mnist", "fashion_mnist_subset", "digits", "mnist", "kmnist", "cifar10", "stl10")


@dataclass
class Task:
    """A downstream task: float32 NCHW images in [0, 1] and int64 labels for both splits."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def __post_init__(self) -> None:
        """Refuse a task whose numbers would be meaningless: images not float NCHW in [0, 1] or not finite, labels
        that are not ints in ``[0, nb_classes)``, fewer than 2 classes, or a class with no training image."""
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if not isinstance(x, np.ndarray) or x.ndim != 4 or not np.issubdtype(x.dtype, np.floating):
                raise ValueError(
                    f"Task {self.name!r}: `x_{split}` must be a float array (N, C, H, W), got "
                    f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}."
                )
            if len(x) == 0:
                raise ValueError(f"Task {self.name!r}: `x_{split}` is empty.")
            if not np.isfinite(x).all():
                raise ValueError(f"Task {self.name!r}: `x_{split}` must hold finite pixels, got NaN or inf.")
            if x.min() < 0 or x.max() > 1:
                raise ValueError(
                    f"Task {self.name!r}: `x_{split}` must hold finite pixels in [0, 1], got "
                    f"[{x.min():.4g}, {x.max():.4g}]."
                )
            if not isinstance(y, np.ndarray) or y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
                raise ValueError(
                    f"Task {self.name!r}: `y_{split}` must be {len(x)} integer labels, got "
                    f"{getattr(y, 'dtype', type(y).__name__)} {getattr(y, 'shape', '')}."
                )
            if y.min() < 0:
                raise ValueError(f"Task {self.name!r}: `y_{split}` holds negative labels (min {y.min()}).")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"Task {self.name!r}: train images {self.x_train.shape[1:]} and test images "
                f"{self.x_test.shape[1:]} differ in shape."
            )
        classes = np.unique(self.y_train)
        if len(classes) < 2:
            raise ValueError(
                f"Task {self.name!r} has {len(classes)} class(es) {classes.tolist()} in its training "
                "split: a classification task needs at least 2."
            )
        nb_classes = int(classes.max()) + 1
        if len(classes) != nb_classes:
            missing = sorted(set(range(nb_classes)) - set(classes.tolist()))
            raise ValueError(
                f"Task {self.name!r}: labels must be 0..K-1 with every class in the training split; "
                f"classes {missing[:10]} of 0..{nb_classes - 1} have no training image (labels not "
                "remapped, or too few training images for the classes)."
            )
        if self.y_test.max() >= nb_classes:
            raise ValueError(
                f"Task {self.name!r}: test labels up to {self.y_test.max()} lie outside the training "
                f"split's classes [0, {nb_classes})."
            )

    @property
    def nb_classes(self) -> int:
        return int(self.y_train.max()) + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def load_task(
    name: str,
    size: int | tuple[int, int] | None = 64,
    root: str | os.PathLike | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
) -> Task:
    """
    Load a downstream task by name.

    :param name: One of ``TASKS``: ``"fashion_mnist"`` (Debian package or ``root``), ``"fashion_mnist_subset"``
                 (shipped), ``"digits"`` (scikit-learn), ``"mnist"``, ``"kmnist"``, ``"cifar10"``, ``"stl10"``.
    :param size: Side length of the images (64 is the benchmark's, DESIGN §6); ``None`` keeps the native size.
    :param root: Dataset folder for the on-disk datasets.
    :param n_train: Class-balanced seeded subset of the training split; ``None`` keeps all.
    :param n_test: Same for the test split.
    :param seed: Seed of the subsets.
    """
    if isinstance(name, str):
        name = name.replace("-", "_")  # fashion-mnist-subset and fashion_mnist_subset are one task
    if name not in TASKS:
        raise ValueError(f"`name` must be one of {TASKS}, got {name!r}.")
    for param, value in (("n_train", n_train), ("n_test", n_test)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
            raise TypeError(f"`{param}` must be None or an int >= 1, got {value!r}.")
        if value is not None and value < 1:
            raise ValueError(f"`{param}` must be None or an int >= 1, got {value}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative int, got {seed!r}.")
    check_size(size)
    if name == "fashion_mnist_subset":
        splits = [load_fashion_mnist_subset(s, size) for s in ("train", "test")]
        splits = [subsample(*splits[0], n_train, seed), subsample(*splits[1], n_test, seed)]
    elif name == "digits":
        splits = [load_digits(s, size) for s in ("train", "test")]
        splits = [subsample(*splits[0], n_train, seed), subsample(*splits[1], n_test, seed)]
    else:
        loader = _LOADERS[name]
        splits = [loader(s, size, root=root, n=k, seed=seed) for s, k in (("train", n_train), ("test", n_test))]
    (x_train, y_train), (x_test, y_test) = splits
    try:
        return Task(name, x_train, y_train, x_test, y_test)
    except ValueError as err:
        if n_train is not None and "training" in str(err):
            raise ValueError(f"{err} `n_train`={n_train} may be too few images for the task's classes.") from None
        raise
