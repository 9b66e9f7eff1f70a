"""
The one batched-inference helper of art_ssl: apply a function to aligned slices of one or more inputs, ``batch_size``
samples at a time, and concatenate what it returns (predictions, embeddings, adversarial examples, per-batch sums).

The streaming readers of :mod:`art_ssl.core.streaming` are not this: they *read* data batch by batch, never holding
all of it, where this helper maps a function over data already in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from contextlib import nullcontext
from typing import overload

import numpy as np
import torch

from art_ssl.core.checks import check_positive_int


@overload
def map_batches(
    fn: Callable[..., torch.Tensor],
    *inputs: torch.Tensor | np.ndarray,
    batch_size: int,
    no_grad: bool = False,
    name: str = "x",
) -> torch.Tensor: ...


@overload
def map_batches(
    fn: Callable[..., np.ndarray],
    *inputs: torch.Tensor | np.ndarray,
    batch_size: int,
    no_grad: bool = False,
    name: str = "x",
) -> np.ndarray: ...


def map_batches(
    fn: Callable[..., torch.Tensor | np.ndarray],
    *inputs: torch.Tensor | np.ndarray,
    batch_size: int,
    no_grad: bool = False,
    name: str = "x",
) -> torch.Tensor | np.ndarray:
    """
    ``fn`` applied to ``inputs[0][i : i + batch_size], inputs[1][i : i + batch_size], ...`` for every batch start
    ``i`` in order (the last batch may be smaller), its outputs concatenated along the first dimension.

    An empty input raises: ``fn`` is never called on it, so the shape and type of an empty result are unknown (a
    zero-length result would also make every mean or accuracy computed from it meaningless).

    :param fn: Called with one slice of each input; returns a ``torch.Tensor`` (concatenated with ``torch.cat``) or a
               ``numpy.ndarray`` (``numpy.concatenate``), batch-first, the same type for every batch.
    :param inputs: One or more tensors or arrays with the same length (first dimension).
    :param batch_size: Samples per call of ``fn``, a positive int (larger than the inputs: one call).
    :param no_grad: Run ``fn`` under ``torch.no_grad()``.
    :param name: The user's name of the first input, for error messages.
    :return: The concatenated outputs.
    :raises TypeError: ``batch_size`` is not an int, or ``fn`` returns something else than tensors or arrays, or
                       both.
    :raises ValueError: ``batch_size`` < 1, no input, an empty input, or inputs of different lengths.
    """
    check_positive_int("batch_size", batch_size)
    if not inputs:
        raise ValueError("`map_batches` needs at least one input.")
    n = _length(inputs[0], name)
    for other in inputs[1:]:
        if _length(other, name) != n:
            raise ValueError(f"The inputs aligned with `{name}` must have its length {n}, got {_length(other, name)}.")
    if n == 0:
        raise ValueError(f"`{name}` is empty: there is nothing to run in batches.")
    context = torch.no_grad() if no_grad else nullcontext()
    with context:
        outputs = [fn(*(x[start : start + batch_size] for x in inputs)) for start in range(0, n, batch_size)]
    tensors = [out for out in outputs if isinstance(out, torch.Tensor)]
    if len(tensors) == len(outputs):
        return torch.cat(tensors)
    arrays = [out for out in outputs if isinstance(out, np.ndarray)]
    if len(arrays) == len(outputs):
        return np.concatenate(arrays)
    kinds = sorted({type(out).__name__ for out in outputs})
    raise TypeError(f"`fn` must return torch.Tensor or numpy.ndarray batches, all of one type, got {kinds}.")


def _length(x: object, name: str) -> int:
    if not isinstance(x, Sized):
        raise TypeError(
            f"The inputs of `map_batches` (`{name}` and the ones aligned with it) must be tensors or arrays."
        )
    return len(x)
