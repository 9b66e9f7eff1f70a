"""
Shared machinery of art_ssl's trainers: an ART ``Trainer`` over a ``PyTorchClassifier`` whose model is an
:class:`~art_ssl.estimators.EncoderWithHead`, trained in torch on the classifier's device.

Every trainer has the dual-track optimiser of Gen-AF's official code (one Adam for the encoder, one for the head,
each with its learning rate, shared weight decay, ``ExponentialLR`` stepped per epoch), so that the baselines are
trained exactly as Gen-AF is; subclasses only say what the loss of a batch is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from art.defences.trainer.trainer import Trainer
from art.estimators.classification import PyTorchClassifier

from art_ssl.core import distributed
from art_ssl.core.amp import GradScaling, amp_dtype, autocast_forward
from art_ssl.core.batching import map_batches
from art_ssl.core.checkpoint import checkpoint_path, data_checksum
from art_ssl.core.checks import (
    check_bool,
    check_fraction,
    check_images,
    check_labels,
    check_positive_int,
    check_positive_number,
    check_seed,
)
from art_ssl.core.device import to_memory_format
from art_ssl.core.driver import Checkpointing, Step, run_epochs
from art_ssl.core.forward import pixel_forward, preprocess
from art_ssl.core.modes import evaluating
from art_ssl.core.pgd import RANDOM_STARTS, pgd_linf
from art_ssl.core.seeding import scoped_seed
from art_ssl.estimators.classifier import EncoderWithHead

# The step decay of the papers' baselines (TRADES and MART multiply the rate by 0.1 at fixed epochs), on top of
# ``lr_decay``: the trainers that take it list these among their ``trainer_params``.
MILESTONE_PARAMS = ["lr_milestones", "lr_milestone_factor"]


def check_lr_milestones(milestones: object, nb_epochs: int) -> None:
    """Raise ``ValueError`` naming ``lr_milestones`` unless it is a tuple or list of increasing epoch counts in
    [1, ``nb_epochs``): one at or past the end would never lower the rate, a silent no-op."""
    if not isinstance(milestones, (tuple, list)):
        raise ValueError(f"`lr_milestones` must be a tuple of epoch counts, got {milestones!r}.")
    for m in milestones:
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 1 <= m < nb_epochs:
            raise ValueError(
                f"`lr_milestones` must hold ints in [1, nb_epochs) = [1, {nb_epochs}), got {tuple(milestones)!r}."
            )
    if list(milestones) != sorted(set(milestones)):
        raise ValueError(f"`lr_milestones` must be strictly increasing, got {tuple(milestones)!r}.")


class EncoderHeadTrainer(Trainer):
    """
    Base class: trains ``classifier.model`` (an ``EncoderWithHead``) in place, as ART's trainers do. The
    classifier's ``preprocessing`` (normalisation) is applied inside, so ``eps`` is in [0, 1] pixel units.

    Under ``torchrun`` the training is data-parallel (:mod:`art_ssl.core.distributed`): ``batch_size`` is the global
    batch, each rank trains on its part of it (PGD random starts and dropout masks sliced from the global batch's),
    BatchNorm uses the global statistics, gradients are summed, rank 0 writes checkpoints; validation runs whole on
    every rank.
    :meth:`fit_generator` trains from a dataset read batch by batch (:mod:`art_ssl.data.stream`).
    After :meth:`fit`, ``history_`` holds one row per epoch: loss, learning rates, seconds, and with
    ``validation_data`` the benign accuracy ``val_ba`` and the accuracy ``val_ra`` under a white-box PGD of the
    trainer's own budget (``validation_pgd_steps`` steps, uniform start).
    """

    trainer_params = [
        "nb_epochs",
        "batch_size",
        "encoder_lr",
        "head_lr",
        "weight_decay",
        "lr_decay",
        "train_encoder",
        "eps",
        "step_size",
        "pgd_steps",
        "random_start",
        "validation_pgd_steps",
        "amp",
        "channels_last",
        "seed",
        "verbose",
    ]

    def __init__(
        self,
        classifier: PyTorchClassifier,
        nb_epochs: int,
        batch_size: int,
        encoder_lr: float,
        head_lr: float,
        weight_decay: float,
        lr_decay: float,
        train_encoder: bool,
        eps: float,
        step_size: float,
        pgd_steps: int,
        random_start: str | None,
        validation_pgd_steps: int = 10,
        amp: bool | str = "auto",
        channels_last: bool = True,
        seed: int = 0,
        verbose: bool = True,
        lr_milestones: Sequence[int] = (),
        lr_milestone_factor: float = 0.1,
    ) -> None:
        if not isinstance(classifier, PyTorchClassifier):
            raise TypeError(f"`classifier` must be an ART PyTorchClassifier, got {type(classifier).__name__}.")
        if not isinstance(classifier.model, EncoderWithHead):
            raise TypeError(
                "`classifier.model` must be an art_ssl EncoderWithHead (build it with "
                f"art_ssl.estimators.encoder_classifier), got {type(classifier.model).__name__}."
            )
        super().__init__(classifier)
        self.nb_epochs = nb_epochs
        self.batch_size = batch_size
        self.encoder_lr = encoder_lr
        self.head_lr = head_lr
        self.weight_decay = weight_decay
        self.lr_decay = lr_decay
        self.lr_milestones = tuple(lr_milestones) if isinstance(lr_milestones, (list, tuple)) else lr_milestones
        self.lr_milestone_factor = lr_milestone_factor
        self.train_encoder = train_encoder
        self.eps = eps
        self.step_size = step_size
        self.pgd_steps = pgd_steps
        self.random_start = random_start
        self.validation_pgd_steps = validation_pgd_steps
        self.amp = amp
        self.channels_last = channels_last
        self.seed = seed
        self.verbose = verbose
        self.history_: pd.DataFrame | None = None
        self._generator = torch.Generator()
        self._checkpoint_dir: str | None = None
        self._check_params()

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        check_positive_int("nb_epochs", self.nb_epochs)
        check_positive_int("batch_size", self.batch_size)
        for name in ("encoder_lr", "head_lr", "eps", "step_size"):
            check_positive_number(name, getattr(self, name))
        check_positive_number("weight_decay", self.weight_decay, allow_zero=True)
        check_positive_number("lr_decay", self.lr_decay)
        if self.lr_decay > 1:
            raise ValueError(f"`lr_decay` must be in (0, 1], got {self.lr_decay!r}.")
        check_lr_milestones(self.lr_milestones, self.nb_epochs)
        check_fraction("lr_milestone_factor", self.lr_milestone_factor)
        if self.eps > 1:
            raise ValueError(f"`eps` must be in (0, 1] (pixel units), got {self.eps!r}.")
        check_positive_int("pgd_steps", self.pgd_steps)
        if (
            isinstance(self.validation_pgd_steps, bool)
            or not isinstance(self.validation_pgd_steps, int)
            or (self.validation_pgd_steps < 0)
        ):
            raise ValueError(f"`validation_pgd_steps` must be an int >= 0, got {self.validation_pgd_steps!r}.")
        if self.random_start not in RANDOM_STARTS:
            raise ValueError(f"`random_start` must be one of {RANDOM_STARTS}, got {self.random_start!r}.")
        for name in ("train_encoder", "channels_last", "verbose"):
            check_bool(name, getattr(self, name))
        amp_dtype(self.device, self.amp)  # ValueError for a bad value, or amp=True where it cannot run
        check_seed(self.seed)

    # ------------------------------------------------------------------ torch helpers
    @property
    def model(self) -> EncoderWithHead:
        return self._classifier.model

    @property
    def device(self) -> torch.device:
        return self._classifier.device

    def _preprocess(self, x: torch.Tensor) -> torch.Tensor:
        return preprocess(self._classifier, x)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of pixel-space inputs (normalisation applied, differentiable in ``x``)."""
        return pixel_forward(self._classifier, x)

    def _autocast(self) -> AbstractContextManager:
        """The network (encoder and head) under the mixed-precision policy of :mod:`art_ssl.core.amp`; losses and
        PGD steps computed on its outputs stay float32."""
        return autocast_forward([self.model.encoder, self.model.head], self.device, amp_dtype(self.device, self.amp))

    def _pgd(
        self,
        loss_fn: Callable[[torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        eps: float | None = None,
        step_size: float | None = None,
        steps: int | None = None,
        random_start: str | None | Literal[True] = True,  # True: the trainer's own setting
    ) -> torch.Tensor:
        """The trainer's inner maximisation, in eval mode (BatchNorm running statistics, no dropout), as the
        official codes of Gen-AF, TRADES and MART do (``_inner_eval_mode = False`` in a subclass: in the model's
        current mode, as Madry et al.'s PGD-AT; a diagnostic of evaluations/digits_collapse_probes.py)."""
        mode = evaluating(self.model) if self._inner_eval_mode else contextlib.nullcontext()
        with mode, self._autocast():
            return pgd_linf(
                loss_fn,
                x,
                eps=self.eps if eps is None else eps,
                step_size=self.step_size if step_size is None else step_size,
                steps=self.pgd_steps if steps is None else steps,
                random_start=self.random_start if random_start is True else random_start,
                generator=self._generator,
                clip_values=self._clip_values,
                rows=self._shard_rows,  # data-parallel: this rank's rows of the global batch's random start
            )

    def _ce_pgd(self, x: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """PGD on the summed cross-entropy (Madry et al.'s inner maximisation)."""
        return self._pgd(lambda x_adv: F.cross_entropy(self._logits(x_adv), y, reduction="sum"), x, **kwargs)

    @property
    def _clip_values(self) -> tuple[float, float] | None:
        clip = self._classifier.clip_values
        return None if clip is None else (float(np.min(clip[0])), float(np.max(clip[1])))

    _inner_eval_mode = True  # the inner PGD switches the model to eval mode (see ``_pgd``)
    _shard_rows: tuple[int, int] | None = None  # set per batch by ``_train`` in data-parallel training
    _steps_per_epoch = 1  # set by ``_train`` for the loop it runs

    # ------------------------------------------------------------------ what subclasses define
    def _batch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _before_step(self, step: int, epoch: int, nb_epochs: int, optimizers: dict) -> None:
        """Called before every optimiser step (``step`` counts from 0 over the whole run, ``epoch`` from 1): where
        a per-step learning-rate schedule goes. Default: nothing."""

    # ------------------------------------------------------------------ training loop
    def _optimizers(self, encoder_lr: float, head_lr: float, weight_decay: float) -> dict[str, torch.optim.Optimizer]:
        """The dual track: ``{"encoder": Adam, "head": Adam}`` over the trainable parameters of each part."""
        groups = {"head": (self.model.head, head_lr)}
        if self.train_encoder:
            groups = {"encoder": (self.model.encoder, encoder_lr), **groups}
        optimizers: dict[str, torch.optim.Optimizer] = {}
        for name, (module, lr) in groups.items():
            params = [p for p in module.parameters() if p.requires_grad]
            if params:
                optimizers[name] = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        if not optimizers:
            raise ValueError("The model has no trainable parameters.")
        return optimizers

    def _check_data(self, x: Any, y: Any, name: str = "x") -> tuple[torch.Tensor, torch.Tensor]:
        x = check_images(x, name, self._classifier.input_shape, self._classifier.clip_values)
        y_name = "y" if name == "x" else f"{name} labels"
        y = check_labels(y, len(x), y_name, self._classifier.nb_classes)
        return torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
        nb_epochs: int | None = None,
        batch_size: int | None = None,
        verbose: bool | None = None,
        checkpoint_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        """
        Train the classifier's model in place.

        :param x: Training images (N, C, H, W) in the classifier's clip range.
        :param y: Labels, (N,) integers or (N, C) one-hot.
        :param validation_data: ``(x_val, y_val)`` for the per-epoch ``val_ba`` / ``val_ra`` in ``history_``.
        :param nb_epochs: Overrides the constructor's ``nb_epochs``.
        :param batch_size: Overrides the constructor's ``batch_size``.
        :param verbose: Overrides the constructor's ``verbose``.
        :param checkpoint_dir: Folder where the whole training state is saved after every epoch (one file per
                               training stage); calling ``fit`` again with the same folder, settings and data (e.g.
                               after the process was killed) continues after the last saved epoch and ends with the
                               weights and ``history_`` of an uninterrupted run.
        """
        nb_epochs, batch_size, verbose = self._fit_settings(nb_epochs, batch_size, verbose, kwargs)
        checkpoint_path(checkpoint_dir, "check")  # TypeError / ValueError before any work
        x_t, y_t = self._check_data(x, y)
        val = None if validation_data is None else self._check_validation(validation_data)
        self._fit_checked(x_t, y_t, val, nb_epochs, batch_size, verbose, checkpoint_dir)

    def fit_generator(
        self,
        generator: Any,
        nb_epochs: int | None = None,
        batch_size: int | None = None,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
        verbose: bool | None = None,
        checkpoint_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        """
        Train from a dataset read batch by batch (ART's ``fit_generator``): the images are never all in memory.
        The batches follow the trainer's seeded permutation (not the loader's sampler), so the result equals
        :meth:`fit` on the same images as an array.

        :param generator: A ``torch.utils.data.Dataset`` of ``(image, label)`` (e.g.
                          :func:`art_ssl.data.stream.memmap_dataset`, :class:`art_ssl.data.stream.ImageFolderDataset`),
                          a ``DataLoader`` over one, or ART's ``PyTorchDataGenerator``.
        :param nb_epochs: Overrides the constructor's ``nb_epochs``.
        :param batch_size: Overrides the constructor's ``batch_size`` (default: the constructor's, not the loader's).
        :param validation_data: ``(x_val, y_val)`` arrays, as in :meth:`fit`.
        :param verbose: Overrides the constructor's ``verbose``.
        :param checkpoint_dir: As in :meth:`fit`.
        """
        from art_ssl.core.streaming import StreamedImages, as_dataset, dataset_labels

        if type(self).fit is not EncoderHeadTrainer.fit:
            raise NotImplementedError(f"{type(self).__name__} trains with its own `fit`; it has no `fit_generator`.")
        dataset, _ = as_dataset(generator, "generator")
        nb_epochs, batch_size, verbose = self._fit_settings(nb_epochs, batch_size, verbose, kwargs)
        checkpoint_path(checkpoint_dir, "check")
        shape = self._classifier.input_shape
        x_t = StreamedImages(dataset, self.device, "generator", shape, self._clip_values)
        labels = check_labels(dataset_labels(dataset, "generator"), len(dataset), "generator labels", self._nb_classes)
        val = None if validation_data is None else self._check_validation(validation_data)
        self._fit_checked(
            x_t, torch.from_numpy(labels).to(self.device), val, nb_epochs, batch_size, verbose, checkpoint_dir
        )

    @property
    def _nb_classes(self) -> int:
        return self._classifier.nb_classes

    def _fit_checked(self, x_t, y_t, val, nb_epochs: int, batch_size: int, verbose: bool, checkpoint_dir) -> None:
        """:meth:`fit` and :meth:`fit_generator` after their checks."""
        self._checkpoint_dir = checkpoint_dir
        distributed.broadcast_module(self.model)  # data-parallel: every rank starts from rank 0's weights
        try:
            with scoped_seed(self.seed) as generator:  # the caller's global RNG is left as it was
                self._generator = generator
                # data-parallel: BatchNorm statistics and dropout masks of the global batch
                with distributed.global_batchnorm(self.model), distributed.global_dropout(self.model):
                    self.history_ = self._run(x_t, y_t, val, nb_epochs, batch_size, verbose)
        finally:
            self._checkpoint_dir = None
        self.model.eval()

    def _fit_settings(
        self, nb_epochs: int | None, batch_size: int | None, verbose: bool | None, kwargs: dict
    ) -> tuple[int, int, bool]:
        """``fit``'s overrides of the constructor's settings, checked."""
        if kwargs:
            raise TypeError(f"Unexpected arguments: {sorted(kwargs)}.")
        nb_epochs = self.nb_epochs if nb_epochs is None else nb_epochs
        batch_size = self.batch_size if batch_size is None else batch_size
        verbose = self.verbose if verbose is None else verbose
        check_positive_int("nb_epochs", nb_epochs)
        check_positive_int("batch_size", batch_size)
        check_bool("verbose", verbose)
        check_lr_milestones(self.lr_milestones, nb_epochs)  # before any work, against the epochs this fit runs
        return nb_epochs, batch_size, verbose

    def _run(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        val: tuple[torch.Tensor, torch.Tensor] | None,
        nb_epochs: int,
        batch_size: int,
        verbose: bool,
    ) -> pd.DataFrame:
        """The training itself, on checked tensors; returns the history (Gen-AF overrides it with its stages)."""
        self.model.freeze_encoder = not self.train_encoder
        optimizers = self._optimizers(self.encoder_lr, self.head_lr, self.weight_decay)
        return self._train(x, y, val, nb_epochs, batch_size, verbose, self._batch_loss, optimizers, None)

    def _check_validation(self, validation_data: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("`validation_data` must be a pair (x_val, y_val).")
        return self._check_data(validation_data[0], validation_data[1], name="validation_data")

    def _train(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        val: tuple[torch.Tensor, torch.Tensor] | None,
        nb_epochs: int,
        batch_size: int,
        verbose: bool,
        batch_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        optimizers: dict[str, torch.optim.Optimizer],
        stage: str | None,
        reset_optimizers: Callable[[], dict[str, torch.optim.Optimizer]] | None = None,
        lr_decay: float | None = None,
        checkpoint_name: str | None = None,
        lr_milestones: Sequence[int] | None = None,
    ) -> pd.DataFrame:
        """The epoch loop shared by every trainer (and every stage of Gen-AF), run by
        :func:`~art_ssl.core.driver.run_epochs`. ``checkpoint_name`` names this loop's checkpoint file (default: the
        stage, or ``"main"``): each loop of one ``fit`` needs its own. ``lr_decay`` and ``lr_milestones`` default to
        the trainer's (a loop other than the main one passes its own, e.g. ``()``)."""
        lr_decay = self.lr_decay if lr_decay is None else lr_decay
        milestones = self.lr_milestones if lr_milestones is None else tuple(lr_milestones)
        check_lr_milestones(milestones, nb_epochs)
        if self.channels_last and x.dim() == 4:  # ~1.4x faster convolutions on CPU, and on GPU with autocast
            to_memory_format(self.model, torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        schedulers: list[torch.optim.lr_scheduler.LRScheduler] = [
            torch.optim.lr_scheduler.ExponentialLR(o, gamma=lr_decay) for o in optimizers.values()
        ]
        if milestones:  # chained: both multiply the rate the other left (step decay on top of the per-epoch one)
            schedulers += [
                torch.optim.lr_scheduler.MultiStepLR(o, milestones=list(milestones), gamma=self.lr_milestone_factor)
                for o in optimizers.values()
            ]
        self._steps_per_epoch = -(-len(x) // batch_size)  # global batches an epoch (for ``_before_step``'s schedules)
        ckpt_file = checkpoint_path(
            self._checkpoint_dir, f"{type(self).__name__}-stage-{checkpoint_name or stage or 'main'}.pt"
        )
        fingerprint = (
            None if ckpt_file is None else self._fingerprint(x, y, val, nb_epochs, batch_size, stage, lr_decay)
        )
        scaling = GradScaling(amp_dtype(self.device, self.amp), self.device)  # loss scaling for CUDA float16 only
        shards = distributed.BatchShards(len(x), batch_size)  # data-parallel: this rank's part of each global batch

        def restore(state: dict[str, Any]) -> None:
            self.model.load_state_dict(state["model"])
            if reset_optimizers is None:  # otherwise the next epoch starts with fresh optimisers, as it would have
                for name, optimizer in optimizers.items():
                    optimizer.load_state_dict(state["optimizers"][name])
                for scheduler, saved in zip(schedulers, state["schedulers"], strict=True):
                    scheduler.load_state_dict(saved)

        def snapshot() -> dict[str, Any]:
            return {
                "model": self.model.state_dict(),
                "optimizers": {name: o.state_dict() for name, o in optimizers.items()},
                "schedulers": [sch.state_dict() for sch in schedulers],
            }

        def start_epoch(epoch: int) -> None:
            nonlocal optimizers, schedulers
            if reset_optimizers is not None and epoch > 1:
                optimizers, schedulers = reset_optimizers(), []
            self.model.train()

        def step(idx: torch.Tensor, where: Step) -> tuple[float, int]:
            idx = shards.local(idx.to(self.device))  # data-parallel: all of it on one process
            self._shard_rows = shards.rows
            self._before_step(where.count, where.epoch, nb_epochs, optimizers)
            with self._autocast():
                loss = batch_loss(x[idx], y[idx])
            for optimizer in optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            scaling.backward(loss * shards.weight)  # data-parallel: this rank's share of the global mean
            distributed.sync_gradients(self.model.parameters())  # data-parallel: sum of the shares
            scaling.step(list(optimizers.values()))
            return float(loss.detach()), len(idx)

        def end_epoch(epoch: int, values: list[tuple[float, int]], seconds: float) -> dict[str, Any]:
            self._shard_rows = None
            count: float  # an int, then the float sum over the ranks
            total, count = 0.0, 0
            for loss, size in values:
                total += loss * size
                count += size
            total, count = distributed.sum_over_ranks(total, count)  # data-parallel: the global epoch loss
            lrs = {f"lr_{name}": o.param_groups[0]["lr"] for name, o in optimizers.items()}
            for scheduler in schedulers:
                scheduler.step()
            row = {"epoch": epoch, "loss": total / count, **lrs, "seconds": seconds}
            if stage is not None:
                row = {"stage": stage, **row}
            if val is not None:
                row.update(self._validate(*val, batch_size))
            return row

        loop = run_epochs(
            n=len(x),
            batch_size=batch_size,
            nb_epochs=nb_epochs,
            generator=self._generator,
            step=step,
            start_epoch=start_epoch,
            end_epoch=end_epoch,
            checkpoint=Checkpointing(file=ckpt_file, fingerprint=fingerprint, state=snapshot, restore=restore),
            desc=f"{type(self).__name__}{'' if stage is None else ' ' + stage}",
            verbose=verbose,
        )
        self.model.eval()
        to_memory_format(self.model, torch.contiguous_format)
        return pd.DataFrame(loop.rows)

    def _fingerprint(self, x, y, val, nb_epochs: int, batch_size: int, stage: str | None, lr_decay: float) -> dict:
        """What a checkpoint must match to be resumed: the trainer, its parameters (those of
        :meth:`_loop_params`), the stage and the data."""
        params = {name: repr(getattr(self, name)) for name in self._loop_params(stage)}
        data = data_checksum(x, y) + ([] if val is None else data_checksum(*val))
        return {
            "trainer": type(self).__name__,
            "params": params,
            "stage": str(stage),
            "nb_epochs": nb_epochs,
            "batch_size": batch_size,
            "lr_decay": float(lr_decay),
            "data": data,
        }

    def _loop_params(self, stage: str | None) -> list[str]:
        """The parameters that shape the loop of ``stage`` (its checkpoint's fingerprint): all but ``verbose``; a
        trainer with stages leaves out those that only a later stage reads, so that an earlier stage resumes across
        runs that differ only there."""
        return [name for name in self.trainer_params if name != "verbose"]

    @torch.no_grad()
    def _accuracy(self, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
        with evaluating(self.model), self._autocast():
            predictions = map_batches(lambda xb: self._logits(xb).argmax(1), x, batch_size=batch_size)
        return int((predictions == y).sum()) / len(x)

    def _validate(self, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> dict[str, float]:
        metrics = {"val_ba": self._accuracy(x, y, batch_size)}
        if self.validation_pgd_steps > 0:
            x_adv = map_batches(
                lambda xb, yb: self._ce_pgd(xb, yb, steps=self.validation_pgd_steps, random_start="uniform"),
                x,
                y,
                batch_size=batch_size,
            )
            metrics["val_ra"] = self._accuracy(x_adv, y, batch_size)
        return metrics


class BetaRegularisedTrainer(EncoderHeadTrainer):
    """
    What TRADES and MART share: a clean/robust trade-off weight ``beta`` and the official CIFAR-10 budget of both
    codes (eps 0.031, step 0.007, 10 steps, start ``x + 0.001 N(0, I)``). Parameters as
    :class:`~art_ssl.defences.trainer.FineTuningTrainer`, plus ``beta``.
    """

    trainer_params = EncoderHeadTrainer.trainer_params + ["beta", *MILESTONE_PARAMS]

    def __init__(
        self,
        classifier: PyTorchClassifier,
        beta: float = 6.0,
        nb_epochs: int = 50,
        batch_size: int = 256,
        encoder_lr: float = 1e-4,
        head_lr: float = 5e-3,
        weight_decay: float = 8e-4,
        lr_decay: float = 0.96,
        train_encoder: bool = True,
        eps: float = 0.031,
        step_size: float = 0.007,
        pgd_steps: int = 10,
        validation_pgd_steps: int = 10,
        amp: bool | str = "auto",
        channels_last: bool = True,
        seed: int = 0,
        verbose: bool = True,
        lr_milestones: Sequence[int] = (),
        lr_milestone_factor: float = 0.1,
    ) -> None:
        self.beta = beta
        super().__init__(
            classifier,
            nb_epochs,
            batch_size,
            encoder_lr,
            head_lr,
            weight_decay,
            lr_decay,
            train_encoder,
            eps,
            step_size,
            pgd_steps,
            "normal",
            validation_pgd_steps,
            amp,
            channels_last,
            seed,
            verbose,
            lr_milestones=lr_milestones,
            lr_milestone_factor=lr_milestone_factor,
        )

    def _check_params(self) -> None:
        super()._check_params()
        check_positive_number("beta", self.beta, allow_zero=True)
