"""Input checks at the public numpy surface: bad input raises a clear error instead of giving a wrong result."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_images(
    x: object,
    name: str = "x",
    input_shape: Sequence[int] | None = None,
    clip_values: tuple[float, float] | None = None,
) -> np.ndarray:
    """
    Validate a batch of images given to a public method and return it as float32.

    :param x: The array to check.
    :param name: Parameter name used in the error messages.
    :param input_shape: Expected shape of one sample, e.g. ``(1, 64, 64)``.
    :param clip_values: ``(min, max)`` the pixels must lie in.
    :raises TypeError: ``x`` is not a numpy array of floats.
    :raises ValueError: empty, wrong shape, NaN/inf, or pixels outside ``clip_values``.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"`{name}` must be a numpy array, got {type(x).__name__}.")
    if not np.issubdtype(x.dtype, np.floating):
        hint = " (scale uint8 images to [0, 1] with x.astype(np.float32) / 255)" if x.dtype == np.uint8 else ""
        raise TypeError(f"`{name}` must hold floats, got dtype {x.dtype}{hint}.")
    if x.shape[0:1] == (0,) or x.size == 0:
        raise ValueError(f"`{name}` is empty (shape {x.shape}).")
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(f"`{name}` must have shape (N, {', '.join(map(str, input_shape))}), got {x.shape}.")
    if not np.isfinite(x).all():
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    if clip_values is not None:
        low, high = float(np.min(clip_values[0])), float(np.max(clip_values[1]))
        x_min, x_max = float(x.min()), float(x.max())
        if x_min < low - 1e-6 or x_max > high + 1e-6:
            raise ValueError(f"`{name}` has values in [{x_min:.4g}, {x_max:.4g}], outside clip_values [{low}, {high}].")
    return x.astype(np.float32, copy=False)


def check_labels(y: object, n: int, name: str = "y", nb_classes: int | None = None) -> np.ndarray:
    """Validate integer class labels (N,) or one-hot/probabilities (N, C) and return integer labels."""
    if not isinstance(y, np.ndarray):
        raise TypeError(f"`{name}` must be a numpy array, got {type(y).__name__}.")
    labels: np.ndarray = y  # ``y`` is declared ``object``: a typed name keeps the reassignments below arrays
    if labels.ndim == 2:
        if not (np.issubdtype(labels.dtype, np.number) or labels.dtype == bool) or not np.isfinite(labels).all():
            raise ValueError(f"`{name}` one-hot/probabilities hold NaN, inf or non-numbers: no class can be read.")
        if labels.shape[1] < 2:
            raise ValueError(f"`{name}` one-hot/probabilities (N, C) need C >= 2, got shape {labels.shape}.")
        labels = np.argmax(labels, axis=1)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"`{name}` must have {n} labels (shape ({n},) or ({n}, C)), got shape {labels.shape}.")
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.number):
        raise TypeError(f"`{name}` must hold integer class labels, got dtype {labels.dtype}.")
    if not (np.issubdtype(labels.dtype, np.integer) or np.all(np.mod(labels, 1) == 0)):
        raise TypeError(f"`{name}` must hold integer class labels, got dtype {labels.dtype}.")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or (nb_classes is not None and labels.max() >= nb_classes)):
        raise ValueError(f"`{name}` labels must lie in [0, {nb_classes}), got [{labels.min()}, {labels.max()}].")
    return labels


def check_positive_int(name: str, value: object) -> None:
    """Raise naming ``name`` unless ``value`` is a positive int: ``TypeError`` for another type (bools included),
    ``ValueError`` for a value below 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be a positive int, got {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}.")


def check_positive_number(name: str, value: object, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a number > 0 (>= 0 with ``allow_zero``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not np.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be a finite number {bound}, got {value!r}.")


def check_fraction(name: str, value: object) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a number in (0, 1]."""
    check_positive_number(name, value)
    assert isinstance(value, (int, float, np.integer, np.floating))  # check_positive_number raised otherwise
    if value > 1:
        raise ValueError(f"`{name}` must be in (0, 1], got {value!r}.")


def check_bool(name: str, value: object) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be a bool, got {value!r}.")


def check_seed(seed: object) -> None:
    """Raise ``ValueError`` unless ``seed`` is a non-negative int."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative int, got {seed!r}.")
