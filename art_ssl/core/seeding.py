"""
The seeding policy of art_ssl: every ``fit`` / ``generate`` / ``poison_estimator`` / ``pretrain`` runs inside
:func:`scoped_seed`, so that

- the same ``seed`` gives the same result (torch's global generators, which kornia's augmentations, dropout and
  layer initialisation draw from, and numpy's and Python's global generators are seeded for the block; explicit
  draws such as the shuffling use the CPU generator the block yields);
- the caller's global random state (torch CPU and CUDA, numpy, ``random``) is the same after the call as before it,
  whatever happened inside (an exception included).

Blocks nest: an inner block seeds afresh and restores the outer block's state when it ends.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from art_ssl.core.checks import check_seed


def global_rng_state() -> dict[str, Any]:
    """The global random state: torch CPU, torch CUDA (only where CUDA is already initialised: reading it would
    start CUDA), numpy and Python's ``random``."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore a state read by :func:`global_rng_state`."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def scoped_seed(seed: int) -> Iterator[torch.Generator]:
    """
    Seed the global generators with ``seed`` for the block and restore the caller's state after it.

    :param seed: Non-negative int.
    :return: (yielded) a fresh CPU ``torch.Generator`` seeded with ``seed``, for the explicit draws of the block
             (shuffling, random starts): the same numbers on every device.
    :raises ValueError: ``seed`` is not a non-negative int.
    """
    check_seed(seed)
    seed = int(seed)
    saved = global_rng_state()
    cuda_was_initialised = "cuda" in saved
    try:
        torch.manual_seed(seed)  # also seeds CUDA (lazily when it is not started yet)
        np.random.seed(seed)
        random.seed(seed)
        yield torch.Generator().manual_seed(seed)
    finally:
        set_global_rng_state(saved)
        if not cuda_was_initialised and torch.cuda.is_available() and torch.cuda.is_initialized():
            # CUDA started inside the block: its generators cannot go back to "not started"; give them the caller's
            # CPU seed (no draw from the caller's stream) so that they do not keep the block's seed
            torch.cuda.manual_seed_all(torch.initial_seed())
