"""One training loop for every self-supervised method in :mod:`art_ssl.ssl.methods`."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from art_ssl.core import distributed
from art_ssl.core.amp import GradScaling, amp_dtype, autocast_forward, check_amp
from art_ssl.core.checkpoint import checkpoint_path, data_checksum
from art_ssl.core.device import resolve_device, to_memory_format
from art_ssl.core.driver import Checkpointing, Step, run_epochs
from art_ssl.core.probing import output_dim
from art_ssl.core.seeding import scoped_seed
from art_ssl.ssl.augment import AUGMENTATIONS, ssl_augmentation
from art_ssl.ssl.methods import METHODS, SSLMethod

logger = logging.getLogger(__name__)

# Per-method optimiser defaults: Adam for the methods that train well with it in short CPU runs; SGD with momentum
# for SimSiam, as its paper (sec. 4) and official code (base lr 0.03 * batch / 256, wd 5e-4 for CIFAR).
OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "simclr": {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-6},
    "byol": {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-6},
    "simsiam": {"optimizer": "sgd", "lr": 0.06, "weight_decay": 5e-4},
    "barlow_twins": {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-6},
    "moco": {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-6},
}


LR_SCHEDULES = ("cosine", "constant")


@dataclass
class PretrainResult:
    """The trained encoder (in eval mode, on the CPU), the method module and a per-epoch loss history."""

    encoder: nn.Module
    method: SSLMethod
    history: pd.DataFrame


def feature_dim_of(encoder: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Embedding size of ``encoder`` for inputs of ``input_shape`` (C, H, W); see
    :func:`~art_ssl.core.probing.output_dim`."""
    return output_dim(encoder, input_shape=input_shape, name="encoder")


def pretrain(
    encoder: nn.Module,
    x: np.ndarray,
    method: str | SSLMethod = "simclr",
    nb_epochs: int = 10,
    batch_size: int = 256,
    optimizer: str | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    warmup_epochs: float = 1.0,
    lr_schedule: str = "cosine",
    seed: int = 0,
    device_type: str = "gpu",
    augmentation: nn.Module | str | None = None,
    method_kwargs: dict[str, Any] | None = None,
    epoch_callback: Callable[[int, nn.Module, pd.DataFrame], None] | None = None,
    channels_last: bool = True,
    amp: bool | str = "auto",
    checkpoint_dir: str | None = None,
    verbose: bool = True,
) -> PretrainResult:
    """
    Pre-train ``encoder`` on unlabelled images with a self-supervised method.

    Learning rate: linear warm-up for ``warmup_epochs``, then cosine decay to 0 (per step).

    Under ``torchrun`` (a process group of N ranks, :mod:`art_ssl.core.distributed`) the run is data-parallel:
    ``batch_size`` is the global batch, each rank trains on its part of it, the loss is the method's over the
    all-gathered global batch, BatchNorm uses the global batch's statistics, and the weights equal a single
    process's up to float32 rounding (with the same augmentations; each rank draws its own).

    :param encoder: ``nn.Module`` mapping (N, C, H, W) to (N, D); trained in place.
    :param x: Unlabelled images, float32 (N, C, H, W) in [0, 1] (a memory-mapped array is read batch by batch), or a
              dataset of them read batch by batch: a ``torch.utils.data.Dataset`` (items ``image`` or
              ``(image, label)``), a ``DataLoader`` or ART's ``PyTorchDataGenerator`` (:mod:`art_ssl.data.stream`).
    :param method: ``"simclr"``, ``"moco"``, ``"byol"``, ``"simsiam"`` or ``"barlow_twins"``, or a built
                   :class:`SSLMethod` around ``encoder`` (a custom objective, e.g. distillation's); it is trained
                   as is and ``method_kwargs`` must be empty.
    :param nb_epochs: Number of passes over ``x``.
    :param batch_size: Images per step (each gives two views).
    :param optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9); default per method (``OPTIMIZER_DEFAULTS``).
    :param lr: Peak learning rate; default per method.
    :param weight_decay: Weight decay; default per method.
    :param warmup_epochs: Epochs of linear warm-up.
    :param lr_schedule: ``"cosine"`` (warm-up then cosine decay to 0, per step) or ``"constant"`` (warm-up then
                        ``lr``).
    :param seed: Seeds the initialisation of the method's heads, the shuffling and the augmentations.
    :param device_type: ``"gpu"`` (CUDA when available) or ``"cpu"``.
    :param augmentation: Module producing one random view of a batch, or the name of an implementation of
                         :func:`ssl_augmentation`'s views: ``"kornia"`` (the default: the reference, with which the
                         shipped zoo was trained) or ``"batched"`` (:class:`~art_ssl.ssl.augment.BatchedSSLViews`:
                         same distributions in a fixed handful of tensor operations, for GPUs).
    :param method_kwargs: Extra arguments of the method (e.g. ``{"temperature": 0.2}``).
    :param epoch_callback: Called as ``f(epoch, encoder, history)`` after each epoch (e.g. to save a checkpoint); on
                           rank 0 only in data-parallel training.
    :param channels_last: Train in channels-last memory format (~1.4x faster convolutions on our CPUs); the
                          returned encoder is back in the default format.
    :param amp: Mixed precision of the networks' forward passes (``True``, ``False`` or ``"auto"``: bf16 only where
                measured faster), see :mod:`art_ssl.core.amp`; the losses stay float32.
    :param checkpoint_dir: Folder for ``pretrain.pt``, written after every epoch; a run started again with the same
                           folder, settings and data continues after the last saved epoch and ends with the weights
                           of an uninterrupted run (``epoch_callback`` is not repeated for the epochs already done).
    :param verbose: Show a progress bar.
    """
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"`encoder` must be a torch.nn.Module, got {type(encoder).__name__}.")
    if isinstance(method, SSLMethod):
        if method.encoder is not encoder:
            raise ValueError("A built `method` must wrap `encoder` itself (method.encoder is not encoder).")
        if method_kwargs:
            raise ValueError("`method_kwargs` only applies to a method given by name.")
    elif method not in METHODS:
        raise ValueError(f"`method` must be one of {sorted(METHODS)} or an SSLMethod, got {method!r}.")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"`lr_schedule` must be one of {LR_SCHEDULES}, got {lr_schedule!r}.")
    name = method.name if isinstance(method, SSLMethod) else method
    if not isinstance(x, np.ndarray):  # a dataset, DataLoader or PyTorchDataGenerator: read batch by batch
        from art_ssl.core.streaming import StreamedImages, as_dataset

        x = StreamedImages(as_dataset(x, "x")[0], "cpu", "x")
    elif x.ndim != 4 or x.dtype != np.float32:
        raise ValueError("`x` must be a float32 numpy array of shape (N, C, H, W), or a dataset of images.")
    if len(x) < batch_size or batch_size < 2:
        raise ValueError(f"`batch_size` must be in [2, len(x)={len(x)}], got {batch_size}.")
    if nb_epochs < 1:
        raise ValueError(f"`nb_epochs` must be >= 1, got {nb_epochs}.")
    distributed.check_world_batch("batch_size", batch_size)
    defaults = OPTIMIZER_DEFAULTS.get(name, OPTIMIZER_DEFAULTS["simclr"])
    optimizer = optimizer or defaults["optimizer"]
    lr = defaults["lr"] if lr is None else lr
    weight_decay = defaults["weight_decay"] if weight_decay is None else weight_decay
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"`optimizer` must be 'adam' or 'sgd', got {optimizer!r}.")
    if lr <= 0 or weight_decay < 0:
        raise ValueError(f"`lr` must be > 0 and `weight_decay` >= 0, got {lr} and {weight_decay}.")
    check_amp("amp", amp)
    if augmentation is None:
        augmentation = "kornia"
    if isinstance(augmentation, str) and augmentation not in AUGMENTATIONS:
        raise ValueError(f"`augmentation` must be an nn.Module or one of {AUGMENTATIONS}, got {augmentation!r}.")
    if not isinstance(augmentation, (str, nn.Module)):
        raise TypeError(f"`augmentation` must be an nn.Module or a name, got {type(augmentation).__name__}.")
    ckpt_file = checkpoint_path(checkpoint_dir, "pretrain.pt")

    device = resolve_device(device_type)
    dtype = amp_dtype(device, amp)
    with scoped_seed(seed) as generator:  # heads' initialisation, shuffling, augmentations; the caller's RNG untouched
        encoder.to(device)
        if isinstance(method, SSLMethod):
            model = method.to(device)
        else:
            model = METHODS[method](encoder, feature_dim_of(encoder, x.shape[1:]), **(method_kwargs or {}))
            model = model.to(device)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        to_memory_format(model, memory_format)
        if isinstance(augmentation, str):
            aug = ssl_augmentation(x.shape[2:], x.shape[1], implementation=augmentation).to(device)
        else:
            aug = augmentation.to(device)
        groups = model.param_groups(lr)
        if optimizer == "adam":
            opt: torch.optim.Optimizer = torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
        else:
            opt = torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=weight_decay)

        x_all = torch.from_numpy(x) if isinstance(x, np.ndarray) else x  # shares memory / reads each batch
        if _fits_on_device(x, x_all, device):
            x_all = x_all.to(device)  # once: no host-side gather and pageable copy at every step
        steps_per_epoch = len(x) // batch_size
        total_steps, warmup_steps = nb_epochs * steps_per_epoch, int(warmup_epochs * steps_per_epoch)
        fingerprint = {
            "method": name,
            "nb_epochs": nb_epochs,
            "batch_size": batch_size,
            "optimizer": optimizer,
            "lr": lr,
            "weight_decay": weight_decay,
            "warmup_epochs": warmup_epochs,
            "lr_schedule": lr_schedule,
            "seed": seed,
            "amp": str(amp),
            "augmentation": augmentation if isinstance(augmentation, str) else type(augmentation).__qualname__,
            "data": data_checksum(x) if ckpt_file is not None else None,
        }

        def restore(state: dict[str, Any]) -> None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            logger.info("%s: resumed from %s after epoch %d", name, ckpt_file, state["epoch"])

        current_lr = lr

        def step(idx: torch.Tensor, where: Step) -> torch.Tensor:
            nonlocal current_lr
            current_lr = _lr_at(where.count, lr, warmup_steps, total_steps, lr_schedule)
            for group in opt.param_groups:
                group["lr"] = lr if group.get("fixed_lr") else current_lr
            rows = distributed.local_rows(idx)  # data-parallel: this rank's part of the (sorted) global batch
            batch = x_all[rows].to(device, non_blocking=True)
            with torch.no_grad():
                v1 = aug(batch).contiguous(memory_format=memory_format)
                v2 = aug(batch).contiguous(memory_format=memory_format)
            with autocast_forward(model.children(), device, dtype):
                loss = model(v1, v2)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{name} loss became {loss.item()} at epoch {where.epoch}; lower `lr`.")
            opt.zero_grad(set_to_none=True)
            scaling.backward(loss)
            distributed.sync_gradients(model.parameters())  # data-parallel: sum of the ranks' gradients
            scaling.step([opt])
            model.step_end((where.count + 1) / total_steps)
            return loss.detach()

        def end_epoch(epoch: int, losses: list[torch.Tensor], seconds: float) -> dict[str, float]:
            row = {"epoch": epoch, "loss": torch.stack(losses).mean().item(), "lr": current_lr, "seconds": seconds}
            logger.info("%s epoch %d: loss %.4f (%.0f s)", name, epoch, row["loss"], seconds)
            return row

        def after_epoch(epoch: int, rows: list[dict[str, float]]) -> None:
            if epoch_callback is not None and distributed.is_main_process():
                epoch_callback(epoch, encoder, pd.DataFrame(rows))

        first_of_call = True

        def start_epoch(epoch: int) -> None:
            nonlocal first_of_call
            if first_of_call and distributed.rank() > 0:  # data-parallel: each rank its own augmentations (rank 0
                torch.manual_seed(distributed.rank_seed(seed) + epoch)  # keeps one process's stream)
            first_of_call = False

        distributed.broadcast_module(model)  # data-parallel: every rank starts from rank 0's weights (and MoCo queue)
        restore_batchnorm = distributed.convert_batchnorm(model)  # data-parallel: BatchNorm over the global batch
        model.train()
        scaling = GradScaling(dtype, device)  # loss scaling for CUDA float16 only
        loop = run_epochs(
            n=len(x),
            batch_size=batch_size,
            nb_epochs=nb_epochs,
            generator=generator,
            step=step,
            start_epoch=start_epoch,
            end_epoch=end_epoch,
            after_epoch=after_epoch,
            drop_last=True,
            sort_batches=True,
            checkpoint=Checkpointing(
                file=ckpt_file,
                fingerprint=fingerprint,
                state=lambda: {"model": model.state_dict(), "optimizer": opt.state_dict()},
                restore=restore,
            ),
            desc=name,
            leave=True,
            postfix_every=10,
            verbose=verbose,
        )
        restore_batchnorm()
    to_memory_format(model.cpu(), torch.contiguous_format)
    encoder.eval()
    return PretrainResult(encoder=encoder, method=model, history=pd.DataFrame(loop.rows))


# In-memory training images up to this size are moved to the GPU once (Fashion-MNIST at 64x64 is 1 GB).
DEVICE_RESIDENT_BYTES = 4 * 2**30


def _fits_on_device(x: Any, x_all: Any, device: torch.device) -> bool:
    """Whether to hold the training images on ``device``: a CUDA device, an in-memory tensor (not a memory-mapped
    file, which is read per batch by design) of at most :data:`DEVICE_RESIDENT_BYTES`."""
    return (
        device.type == "cuda"
        and isinstance(x_all, torch.Tensor)
        and not isinstance(x, np.memmap)
        and x_all.element_size() * x_all.nelement() <= DEVICE_RESIDENT_BYTES
    )


def _lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int, schedule: str = "cosine") -> float:
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * progress))
