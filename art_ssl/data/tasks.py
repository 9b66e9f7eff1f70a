"""Downstream tasks: a train/test split of a dataset at one resolution, by name."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from art_ssl.data._common import subsample
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

    @property
    def nb_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def load_task(
    name: str, size: int | tuple[int, int] | None = 64, root: str | os.PathLike | None = None,
    n_train: int | None = None, n_test: int | None = None, seed: int = 0,
) -> Task:  # fmt: skip
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
    if name not in TASKS:
        raise ValueError(f"`name` must be one of {TASKS}, got {name!r}.")
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
    return Task(name, x_train, y_train, x_test, y_test)
