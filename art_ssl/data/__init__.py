"""
Offline data loaders. Every loader returns float32 NCHW images in [0, 1] and int64 labels, resized bilinearly to
``size`` (64 for the benchmark, DESIGN §6).
"""

from art_ssl.data._common import DatasetNotFoundError, subsample, to_float_nchw
from art_ssl.data.cifar import CIFAR10_CLASSES, load_cifar10
from art_ssl.data.digits import load_digits
from art_ssl.data.folder import load_image_folder
from art_ssl.data.idx import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_ROOT,
    load_fashion_mnist,
    load_fashion_mnist_subset,
    load_idx_dataset,
    load_kmnist,
    load_mnist,
    read_idx,
)
from art_ssl.data.stl10 import STL10_CLASSES, load_stl10
from art_ssl.data.tasks import TASKS, Task, load_task

__all__ = [
    "CIFAR10_CLASSES",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_ROOT",
    "STL10_CLASSES",
    "TASKS",
    "DatasetNotFoundError",
    "Task",
    "load_cifar10",
    "load_digits",
    "load_fashion_mnist",
    "load_fashion_mnist_subset",
    "load_idx_dataset",
    "load_image_folder",
    "load_kmnist",
    "load_mnist",
    "load_stl10",
    "load_task",
    "read_idx",
    "subsample",
    "to_float_nchw",
]
