"""
The one step/epoch driver of art_ssl. Every optimisation loop (``learn_universal``, UAPEPGD, the trainers, SSL
pre-training, BadEncoder) hands it what one step does and what an epoch's history row holds; the driver owns the
rest, once: the epoch's shuffled batches, the step count and ``max_steps`` cap, early stopping, progress bars, the
history rows, and resumable checkpoints (:mod:`art_ssl.core.checkpoint`: state saved after every epoch, a restarted
run continues after the last saved epoch with the result an uninterrupted run has). Under ``torchrun``
(:mod:`art_ssl.core.distributed`) every rank runs the same batches of indices (the caller's ``step`` takes its
shard), rank 0 alone shows progress and writes checkpoints, and every rank resumes from them.

Data iteration lives in one function, :func:`epoch_batches`: sharding the batches across processes (distributed
training) or streaming them changes that function only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from art_ssl.core import distributed
from art_ssl.core.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state

PROGRESS = ("epoch", "run")


def epoch_batches(
    n: int, *, batch_size: int, generator: torch.Generator, drop_last: bool = False, sort: bool = False
) -> list[torch.Tensor]:
    """
    The index batches of one epoch: a fresh permutation of ``range(n)`` drawn from ``generator`` (one draw per
    epoch, on the CPU, so the order is the same on every device), cut into ``batch_size`` slices.

    :param n: Number of samples.
    :param batch_size: Samples per batch (the last batch is shorter unless ``drop_last``).
    :param generator: Seeded CPU generator.
    :param drop_last: Leave out the last, incomplete batch.
    :param sort: Sort the indices inside each batch (gathers memory in order; the batch's content is unchanged).
    :return: One int64 index tensor (CPU) per batch, in order.
    """
    order = torch.randperm(n, generator=generator)
    end = n - n % batch_size if drop_last else n
    batches = [order[i : i + batch_size] for i in range(0, end, batch_size)]
    return [b.sort().values for b in batches] if sort else batches


@dataclass
class Checkpointing:
    """
    What makes a loop resumable.

    :param file: Where the state is written after every epoch (``None``: checkpointing off).
    :param fingerprint: The run's settings and data checksum; a checkpoint with another fingerprint is refused.
    :param state: The caller's part of the state after an epoch (model, optimisers, schedulers, ...).
    :param restore: Puts a saved state (the dict written, caller's part included) back.
    """

    file: Path | None
    fingerprint: dict[str, Any] | None
    state: Callable[[], dict[str, Any]]
    restore: Callable[[dict[str, Any]], None]


@dataclass
class Step:
    """Where a step is: ``epoch`` (from 1), ``index`` (batch within the epoch, from 0), ``count`` (steps done before
    this one, over the whole run, resumed epochs included)."""

    epoch: int
    index: int
    count: int


@dataclass
class LoopResult:
    """The history rows (one per epoch that returned one), the steps taken, whether ``stop`` ended the loop, and the
    wall-clock seconds of this call."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    stopped_early: bool = False
    seconds: float = 0.0


def run_epochs(
    *,
    n: int,
    batch_size: int,
    nb_epochs: int,
    generator: torch.Generator,
    step: Callable[[torch.Tensor, Step], Any],
    end_epoch: Callable[[int, list[Any], float], dict[str, Any] | None] | None = None,
    start_epoch: Callable[[int], None] | None = None,
    after_epoch: Callable[[int, list[dict[str, Any]]], None] | None = None,
    max_steps: int | None = None,
    stop: Callable[[], bool] | None = None,
    check_every: int = 50,
    drop_last: bool = False,
    sort_batches: bool = False,
    checkpoint: Checkpointing | None = None,
    desc: str = "",
    progress: str = "epoch",
    leave: bool = False,
    postfix_every: int = 0,
    verbose: bool = False,
) -> LoopResult:
    """
    Run ``step`` over shuffled batches for ``nb_epochs`` epochs.

    Per epoch: ``start_epoch(epoch)``; the batches of :func:`epoch_batches`; for each, ``value = step(indices, where)``
    unless ``max_steps`` steps were taken; every ``check_every`` steps ``stop()`` (``True`` ends the loop after this
    step); then ``row = end_epoch(epoch, values, seconds)`` is appended to the history unless ``None``; the
    checkpoint is written; ``after_epoch(epoch, rows)``. The loop ends after ``nb_epochs`` epochs, at ``max_steps``
    or when ``stop`` says so.

    :param n: Number of samples.
    :param batch_size: Samples per step.
    :param nb_epochs: Epochs to run (resumed ones included).
    :param generator: Seeded CPU generator of the shuffling (the caller may draw from it too, e.g. in ``step``).
    :param step: One optimisation step on the batch's indices; returns the value ``end_epoch`` receives.
    :param end_epoch: Builds the epoch's history row from the steps' values and the epoch's seconds.
    :param start_epoch: Called before the epoch's batches are drawn.
    :param after_epoch: Called after the epoch's checkpoint is written, with the history so far.
    :param max_steps: Cap on the steps over the whole run (``None``: none).
    :param stop: Early stop, checked every ``check_every`` steps.
    :param check_every: Steps between ``stop`` checks.
    :param drop_last: Leave out each epoch's incomplete last batch.
    :param sort_batches: Sort the indices inside each batch.
    :param checkpoint: Resumable state (``None``: none).
    :param desc: Progress-bar label.
    :param progress: ``"epoch"`` (one bar per epoch, labelled ``desc epoch e/N``) or ``"run"`` (one bar).
    :param leave: Keep the finished bars on screen.
    :param postfix_every: With ``verbose``, show the last step's value (a number) every so many steps (0: never).
    :param verbose: Show progress bars.
    """
    if progress not in PROGRESS:
        raise ValueError(f"`progress` must be one of {PROGRESS}, got {progress!r}.")
    verbose = verbose and distributed.is_main_process()  # data-parallel: one progress bar, rank 0's
    start_time = time.perf_counter()
    result, first_epoch = LoopResult(), 1
    if checkpoint is not None and checkpoint.file is not None:
        if checkpoint.fingerprint is None:  # the fingerprint is what refuses another run's checkpoint
            raise ValueError("`checkpoint`: a checkpoint file needs the run's fingerprint.")
        resumed = load_checkpoint(checkpoint.file, checkpoint.fingerprint)
        if resumed is not None:
            checkpoint.restore(resumed)
            generator.set_state(resumed["generator"])
            set_rng_state(resumed["rng"])
            result.rows, result.steps, first_epoch = list(resumed["history"]), resumed["step"], resumed["epoch"] + 1
    per_epoch = (n // batch_size) if drop_last else -(-n // batch_size)
    total = per_epoch * nb_epochs if max_steps is None else min(max_steps, per_epoch * nb_epochs)
    run_bar = tqdm(total=total, desc=desc, disable=not verbose) if progress == "run" else None
    for epoch in range(first_epoch, nb_epochs + 1):
        if result.stopped_early or result.steps >= total:
            break
        if start_epoch is not None:
            start_epoch(epoch)
        batches = epoch_batches(n, batch_size=batch_size, generator=generator, drop_last=drop_last, sort=sort_batches)
        bar = run_bar or tqdm(
            total=len(batches), desc=f"{desc} epoch {epoch}/{nb_epochs}", disable=not verbose, leave=leave
        )
        values: list[Any] = []
        epoch_start = time.perf_counter()
        for index, indices in enumerate(batches):
            if result.steps >= total:
                break
            value = step(indices, Step(epoch=epoch, index=index, count=result.steps))
            result.steps += 1
            values.append(value)
            bar.update(1)
            if verbose and postfix_every and index % postfix_every == 0 and _is_number(value):
                bar.set_postfix(loss=f"{float(value):.4f}")
            if stop is not None and result.steps % check_every == 0 and stop():
                result.stopped_early = True
                break
        if bar is not run_bar:
            bar.close()
        row = None if end_epoch is None else end_epoch(epoch, values, time.perf_counter() - epoch_start)
        if row is not None:
            result.rows.append(row)
        if checkpoint is not None and checkpoint.file is not None and distributed.is_main_process():  # rank 0 writes
            state = {
                "fingerprint": checkpoint.fingerprint,
                "epoch": epoch,
                "step": result.steps,
                "history": result.rows,
                **checkpoint.state(),
                "generator": generator.get_state(),
                "rng": rng_state(),
            }
            save_checkpoint(checkpoint.file, state)
        if after_epoch is not None:
            after_epoch(epoch, result.rows)
    if run_bar is not None:
        run_bar.close()
    result.seconds = time.perf_counter() - start_time
    return result


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) or (isinstance(value, torch.Tensor) and value.numel() == 1)
