"""One training loop for every self-supervised method in :mod:`art_ssl.ssl.methods`."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from art_ssl.core import distributed
from art_ssl.core.amp import GradScaling, amp_dtype, autocast_forward, check_amp
from art_ssl.core.checkpoint import (
    checkpoint_path,
    data_checksum,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from art_ssl.core.device import resolve_device, seed_everything
from art_ssl.ssl.augment import ssl_augmentation
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
    """Embedding size of ``encoder`` for inputs of ``input_shape`` (C, H, W), found with one forward pass."""
    if hasattr(encoder, "feature_dim"):
        return int(encoder.feature_dim)
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        device = next(encoder.parameters()).device
        out = encoder(torch.zeros((2, *input_shape), device=device))
    encoder.train(was_training)
    if out.ndim != 2:
        raise ValueError(f"`encoder` must output (N, D) embeddings, got shape {tuple(out.shape)}.")
    return int(out.shape[1])


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
    augmentation: nn.Module | None = None,
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
    :param augmentation: Module producing one random view of a batch; default :func:`ssl_augmentation`.
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
        from art_ssl.data.stream import StreamedImages, as_dataset

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
    ckpt_file = checkpoint_path(checkpoint_dir, "pretrain.pt")

    device = resolve_device(device_type)
    dtype = amp_dtype(device, amp)
    generator = seed_everything(seed)
    encoder.to(device)
    if isinstance(method, SSLMethod):
        model = method.to(device)
    else:
        model = METHODS[method](encoder, feature_dim_of(encoder, x.shape[1:]), **(method_kwargs or {})).to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    aug = (augmentation or ssl_augmentation(x.shape[2:], x.shape[1])).to(device)
    groups = model.param_groups(lr)
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=weight_decay)

    x_all = torch.from_numpy(x) if isinstance(x, np.ndarray) else x  # shares memory / reads each batch
    steps_per_epoch = len(x) // batch_size
    total_steps, warmup_steps = nb_epochs * steps_per_epoch, int(warmup_epochs * steps_per_epoch)
    history: list[dict[str, float]] = []
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
        "data": data_checksum(x) if ckpt_file is not None else None,
    }
    first_epoch, step = 1, 0
    resumed = load_checkpoint(ckpt_file, fingerprint)
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        opt.load_state_dict(resumed["optimizer"])
        generator.set_state(resumed["generator"])
        set_rng_state(resumed["rng"])
        history, step, first_epoch = resumed["history"], resumed["step"], resumed["epoch"] + 1
        logger.info("%s: resumed from %s after epoch %d", name, ckpt_file, resumed["epoch"])
    distributed.broadcast_module(model)  # data-parallel: every rank starts from rank 0's weights (and MoCo queue)
    restore_batchnorm = distributed.convert_batchnorm(model)  # data-parallel: BatchNorm over the global batch
    if distributed.rank() > 0:  # data-parallel: each rank its own augmentations (rank 0 keeps one process's stream)
        torch.manual_seed(distributed.rank_seed(seed) + first_epoch)
    model.train()
    scaling = GradScaling(dtype, device)  # loss scaling for CUDA float16 only
    for epoch in range(first_epoch, nb_epochs + 1):
        start, losses = time.perf_counter(), []
        order = torch.randperm(len(x), generator=generator)
        quiet = not verbose or not distributed.is_main_process()
        bar = tqdm(range(steps_per_epoch), desc=f"{name} epoch {epoch}/{nb_epochs}", disable=quiet)
        for i in bar:
            current_lr = _lr_at(step, lr, warmup_steps, total_steps, lr_schedule)
            for group in opt.param_groups:
                group["lr"] = lr if group.get("fixed_lr") else current_lr
            rows = distributed.local_rows(order[i * batch_size : (i + 1) * batch_size].sort().values)  # data-parallel
            batch = x_all[rows].to(device, non_blocking=True)
            with torch.no_grad():
                v1 = aug(batch).contiguous(memory_format=memory_format)
                v2 = aug(batch).contiguous(memory_format=memory_format)
            with autocast_forward(model.children(), device, dtype):
                loss = model(v1, v2)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{name} loss became {loss.item()} at epoch {epoch}; lower `lr`.")
            opt.zero_grad(set_to_none=True)
            scaling.backward(loss)
            distributed.sync_gradients(model.parameters())  # data-parallel: sum of the ranks' gradients
            scaling.step([opt])
            step += 1
            model.step_end(step / total_steps)
            losses.append(loss.detach())
            if verbose and i % 10 == 0:
                bar.set_postfix(loss=f"{losses[-1].item():.4f}")
        epoch_loss = torch.stack(losses).mean().item()
        history.append({"epoch": epoch, "loss": epoch_loss, "lr": current_lr, "seconds": time.perf_counter() - start})
        logger.info("%s epoch %d: loss %.4f (%.0f s)", name, epoch, epoch_loss, history[-1]["seconds"])
        if ckpt_file is not None and distributed.is_main_process():  # data-parallel: rank 0 writes
            save_checkpoint(
                ckpt_file,
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch,
                    "step": step,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "generator": generator.get_state(),
                    "rng": rng_state(),
                    "history": history,
                },
            )
        if epoch_callback is not None and distributed.is_main_process():
            epoch_callback(epoch, encoder, pd.DataFrame(history))
    restore_batchnorm()
    model.cpu().to(memory_format=torch.contiguous_format)
    encoder.eval()
    return PretrainResult(encoder=encoder, method=model, history=pd.DataFrame(history))


def _lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int, schedule: str = "cosine") -> float:
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * progress))
