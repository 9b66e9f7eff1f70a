"""
Data-parallel training on ``torch.distributed``: what the epoch loops (SSL pre-training, every
:class:`~art_ssl.defences.trainer.base.EncoderHeadTrainer`) call so that N processes started by ``torchrun`` train
one model on one global batch, with gloo on the CPU and NCCL on CUDA.

The contract, kept by every helper here:

- **Same global batches as one process.** Every rank draws the epoch's permutation from the same seeded generator
  (so the global order is the same everywhere, as with ``DistributedSampler``); a global batch of ``B`` rows is split
  into ``world_size`` contiguous shards (sizes differing by at most one) and rank ``r`` takes shard ``r``
  (:class:`BatchShards`). The trainers' PGD random starts are drawn for the whole global batch and sliced the same way,
  so each rank's rows get the noise a single process would have drawn for them.
- **Each rank's backward carries its share of the global loss; gradients are summed** (:func:`sync_gradients`). A
  per-sample mean loss is weighted by ``n_local / n_global`` (:attr:`BatchShards.weight`); a loss over the whole
  batch (SimCLR/MoCo negatives, Barlow Twins' cross-correlation, BYOL/SimSiam means) is computed identically on every
  rank from :func:`gather_with_local_grad`, which gives the local rows their exact gradient and the others none.
- **BatchNorm statistics over the global batch** (:func:`global_batchnorm`): in training mode each BatchNorm layer
  normalises with the mean and variance of the global batch (``torch.nn.SyncBatchNorm``'s kernel on CUDA, an
  all-reduce of sums with autograd on the CPU, where PyTorch's ``SyncBatchNorm`` refuses to run); in eval mode
  (PGD, validation) the running statistics, as without distribution.
- **Dropout masks of the global batch** (:func:`global_dropout`, in the trainers): each rank draws the mask one
  process would draw for the global batch and keeps its rows.
- **Rank 0 writes**: checkpoints, progress bars and logs (:func:`is_main_process`).

Outside a ``torchrun`` job (or with one process) every helper is the identity and the loops run exactly as before.
With N processes the weights equal a single process's up to float32 rounding: the all-reduce sums in another order
and the global BatchNorm statistics are sums of per-rank sums (``tests/core/test_distributed.py`` measures it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import nn

logger = logging.getLogger(__name__)

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def is_distributed() -> bool:
    """Whether a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes (1 outside a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main_process() -> bool:
    """Rank 0: the process that writes checkpoints, output files, logs and progress bars."""
    return rank() == 0


def launched_by_torchrun() -> bool:
    """Whether the environment of ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) is set."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def init_from_env(device_type: str = "gpu", timeout_s: float = 600.0) -> torch.device | None:
    """
    Join the process group described by ``torchrun``'s environment variables: NCCL when ``device_type="gpu"`` and
    CUDA is available (each rank on ``cuda:LOCAL_RANK``), gloo otherwise. Does nothing outside ``torchrun`` or when
    the group already exists.

    :param device_type: ``"gpu"`` or ``"cpu"`` (ART's convention).
    :param timeout_s: Seconds a collective may wait for the other ranks.
    :return: The device this rank must train on, or ``None`` when not launched by ``torchrun``.
    """
    if device_type not in ("gpu", "cpu"):
        raise ValueError(f"`device_type` must be 'gpu' or 'cpu', got {device_type!r}.")
    if not launched_by_torchrun():
        return None
    use_cuda = device_type == "gpu" and torch.cuda.is_available()
    device = torch.device("cpu")
    if use_cuda:
        device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(seconds=timeout_s))
        logger.info("rank %d of %d joined (%s)", rank(), world_size(), dist.get_backend())
    return device


def shutdown() -> None:
    """Leave the process group (a no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard_bounds(n_global: int, world: int | None = None, who: int | None = None) -> tuple[int, int]:
    """``(start, stop)`` of rank ``who``'s contiguous shard of ``n_global`` rows (``numpy.array_split`` sizes)."""
    world = world_size() if world is None else world
    who = rank() if who is None else who
    base, extra = divmod(n_global, world)
    start = who * base + min(who, extra)
    return start, start + base + (1 if who < extra else 0)


class BatchShards:
    """
    How the global batches of an epoch are split over the ranks.

    :param n: Number of training rows.
    :param batch_size: Global batch size (the batch one process would use; each rank gets about
                       ``batch_size / world_size`` rows of it).
    :param drop_last: Whether the loop drops the last incomplete batch.
    :raises ValueError: a global batch would leave a rank without rows.
    """

    def __init__(self, n: int, batch_size: int, drop_last: bool = False) -> None:
        self.world = world_size()
        sizes = [batch_size] if n >= batch_size else []
        if not drop_last and n % batch_size:
            sizes.append(n % batch_size)
        if self.world > 1 and any(size < self.world for size in sizes):
            raise ValueError(
                f"`batch_size`: with {self.world} processes every global batch needs >= {self.world} rows; "
                f"{n} rows in batches of {batch_size} leave a batch of {min(sizes)}."
            )
        self.rows: tuple[int, int] | None = None
        self.weight = 1.0

    def local(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's slice of one global batch of indices; sets :attr:`rows` (``(offset, n_global)``, for the
        random starts) and :attr:`weight` (``n_local / n_global``, the share of a per-sample mean loss)."""
        if self.world == 1:
            self.rows, self.weight = None, 1.0
            return batch
        start, stop = shard_bounds(len(batch), self.world)
        self.rows, self.weight = (start, len(batch)), (stop - start) / len(batch)
        return batch[start:stop]


def _row_counts(x: torch.Tensor) -> list[int]:
    """Every rank's number of rows of ``x`` (dim 0), in rank order (one all-gather on ``x``'s device)."""
    sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(world_size())]
    dist.all_gather(sizes, torch.tensor([len(x)], device=x.device))
    return [int(s) for s in sizes]


class _GatherWithLocalGrad(torch.autograd.Function):
    """All-gather along dim 0; the backward returns the gradient of this rank's own rows only (see
    :func:`gather_with_local_grad`)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        counts = _row_counts(x)
        padded = x.new_zeros((max(counts), *x.shape[1:]))
        padded[: len(x)] = x
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded.contiguous())
        start = sum(counts[: rank()])
        ctx.local = (start, start + len(x))
        return torch.cat([part[:count] for part, count in zip(parts, counts, strict=True)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        start, stop = ctx.local
        return grad[start:stop]


def gather_with_local_grad(*tensors: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """
    The global batch of each tensor (rows of rank 0, then rank 1, ...: the single-process order of
    :class:`BatchShards`), for losses over the whole batch (contrastive negatives, cross-correlations). Only this
    rank's rows carry gradient; as every rank computes the same loss from the same gathered tensor, the gradient of
    its own rows is exact and :func:`sync_gradients`' sum assembles the full gradient (no all-reduce in the backward).
    Identity outside a multi-process group.
    """
    if not is_distributed():
        return tensors[0] if len(tensors) == 1 else tensors
    out = tuple(_GatherWithLocalGrad.apply(t) for t in tensors)
    return out[0] if len(out) == 1 else out


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks, differentiable: the backward sums the incoming gradients over ranks too (every rank used the
    sum, so the gradient of each rank's input is the sum of all ranks' gradients)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def _global_batch_norm_cpu(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """Training-mode batch norm with the statistics of the global batch: two differentiable all-reduces (count and
    sum, then the sum of squared deviations: the two-pass variance, as stable as a single process's)."""
    dtype = x.dtype
    if dtype in (torch.bfloat16, torch.float16):  # statistics in float32 under autocast, as the fused kernels keep them
        x = x.float()
    dims = [0, *range(2, x.dim())]
    shape = [1, -1] + [1] * (x.dim() - 2)
    local_n = x.numel() // x.shape[1]
    stats = _AllReduceSum.apply(torch.cat([x.new_tensor([float(local_n)]), x.sum(dims)]))
    n, mean = stats[0], stats[1:] / stats[0]
    centred = x - mean.view(shape)
    var = _AllReduceSum.apply(centred.pow(2).sum(dims)) / n
    out = centred * torch.rsqrt(var + bn.eps).view(shape)
    if bn.affine:
        out = out * bn.weight.view(shape) + bn.bias.view(shape)
    tracked = bn.num_batches_tracked
    if bn.track_running_stats and bn.running_mean is not None and bn.running_var is not None and tracked is not None:
        with torch.no_grad():
            tracked.add_(1)
            momentum = 1.0 / float(tracked) if bn.momentum is None else bn.momentum
            unbiased = var.detach() * n.detach() / (n.detach() - 1).clamp(min=1)
            bn.running_mean.mul_(1 - momentum).add_(mean.detach().to(bn.running_mean.dtype), alpha=momentum)
            bn.running_var.mul_(1 - momentum).add_(unbiased.to(bn.running_var.dtype), alpha=momentum)
    return out.to(dtype)


def _global_batch_norm_cuda(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """Training-mode batch norm through ``torch.nn.SyncBatchNorm``'s own kernel (CUDA, NCCL)."""
    from torch.nn.modules._functions import SyncBatchNorm as SyncBatchNormFunction

    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:
            momentum = 1.0 / float(bn.num_batches_tracked)
    return SyncBatchNormFunction.apply(
        x, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps, momentum, dist.group.WORLD, world_size()
    )


if TYPE_CHECKING:  # the mixin is only ever combined with a BatchNorm class (see _global_class)
    _BatchNormBase = nn.modules.batchnorm._BatchNorm
else:
    _BatchNormBase = object


class _GlobalBatchNormMixin(_BatchNormBase):
    """Swapped into a BatchNorm layer's class by :func:`global_batchnorm`; eval mode and a single process are
    untouched."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        self._check_input_dim(x)
        if x.device.type == "cuda":
            return _global_batch_norm_cuda(self, x)
        return _global_batch_norm_cpu(self, x)


_GLOBAL_CLASSES: dict[type, type] = {}


def _global_class(cls: type) -> type:
    if cls not in _GLOBAL_CLASSES:
        _GLOBAL_CLASSES[cls] = type(f"Global{cls.__name__}", (_GlobalBatchNormMixin, cls), {})
    return _GLOBAL_CLASSES[cls]


def convert_batchnorm(*modules: nn.Module) -> Callable[[], None]:
    """
    Make every ``BatchNorm1d/2d/3d`` layer of ``modules`` normalise training batches with the statistics of the
    global batch (SyncBatchNorm semantics) while a multi-process group runs; returns the function that undoes it. The
    layers keep their parameters, buffers, state-dict keys and ``isinstance`` (only their class is swapped, so
    optimisers and hooks still hold the same tensors). Nothing is changed without a multi-process group.
    """
    swapped: list[tuple[nn.Module, type]] = []
    if is_distributed():
        for module in modules:
            for layer in module.modules():
                if type(layer) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
                    swapped.append((layer, type(layer)))
                    layer.__class__ = _global_class(type(layer))

    def restore() -> None:
        for layer, cls in swapped:
            layer.__class__ = cls

    return restore


@contextmanager
def global_batchnorm(*modules: nn.Module) -> Iterator[None]:
    """:func:`convert_batchnorm` for the duration of the context."""
    restore = convert_batchnorm(*modules)
    try:
        yield
    finally:
        restore()


class _GlobalDropout(nn.Dropout):
    """Swapped into an ``nn.Dropout`` layer's class by :func:`global_dropout`: in training mode with several ranks,
    every rank draws the mask of the whole global batch (as one process would, from the same seeded stream) and
    keeps its own rows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.p > 0 and is_distributed()):
            return super().forward(x)
        counts = _row_counts(x)
        start = sum(counts[: rank()])
        memory_format = torch.channels_last if x.dim() == 4 and not x.is_contiguous() else torch.contiguous_format
        ones = torch.ones((sum(counts), *x.shape[1:]), dtype=x.dtype, device=x.device).contiguous(
            memory_format=memory_format
        )
        mask = nn.functional.dropout(ones, self.p, True)  # the draws of one process's dropout on the global batch
        return x * mask[start : start + len(x)]


@contextmanager
def global_dropout(*modules: nn.Module) -> Iterator[None]:
    """
    For the duration of the context, make every ``nn.Dropout`` layer of ``modules`` drop the units one process
    would drop on the global batch: each rank draws the global batch's mask and applies its own rows of it (as the
    trainers slice the PGD random starts), which needs the same global random state on every rank (the trainers
    seed it with ``seed`` on all of them). Without it, ranks seeded alike would draw the same masks for their own
    rows (row ``i`` of every shard dropped alike). One tiny all-gather per layer and step; nothing is changed
    without a multi-process group.
    """
    swapped: list[tuple[nn.Module, type]] = []
    if is_distributed():
        for module in modules:
            for layer in module.modules():
                if type(layer) is nn.Dropout:
                    swapped.append((layer, type(layer)))
                    layer.__class__ = _GlobalDropout
    try:
        yield
    finally:
        for layer, cls in swapped:
            layer.__class__ = cls


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy ``module``'s parameters and buffers from rank ``src`` to every rank (identical starting weights even if
    the ranks built them differently). No-op without a multi-process group."""
    if not is_distributed():
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src)


def sync_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """
    Sum the gradients of ``parameters`` over the ranks (one flat all-reduce per dtype), after ``backward`` and
    before the optimiser step. Each rank's backward carried its share of the global loss (see the module
    docstring), so the sum is the single-process gradient. No-op without a multi-process group.
    """
    sum_tensors_over_ranks([p.grad for p in parameters if p.grad is not None])


def sum_tensors_over_ranks(tensors: Iterable[torch.Tensor]) -> None:
    """
    Replace each of ``tensors`` by its sum over the ranks, in place (one flat all-reduce per dtype and device):
    :func:`sync_gradients`' sum, for gradients held outside ``.grad`` (``torch.autograd.grad``'s). No-op without a
    multi-process group.
    """
    if not is_distributed():
        return
    by_type: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for tensor in tensors:
        by_type.setdefault((tensor.dtype, tensor.device), []).append(tensor)
    for group in by_type.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.all_reduce(flat)
        offset = 0
        for t in group:
            t.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()


def sum_over_ranks(*values: float) -> tuple[float, ...]:
    """``values`` summed over the ranks (epoch loss totals and counts for the log); as given without a group."""
    if not is_distributed():
        return values
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return tuple(float(v) for v in t.cpu())


def local_share(n_local: int) -> float:
    """``n_local / n_global`` for this rank's rows of the current global batch (one tiny all-reduce): the weight that
    turns a per-sample mean over the local rows into this rank's share of the global mean. 1.0 without a group."""
    if not is_distributed():
        return 1.0
    (n_global,) = sum_over_ranks(float(n_local))
    return n_local / n_global


def barrier() -> None:
    """Wait for every rank (no-op without a multi-process group)."""
    if is_distributed():
        dist.barrier()


def rank_seed(seed: int) -> int:
    """A seed for this rank's own random stream (augmentations): ``seed`` on rank 0, a distinct one elsewhere."""
    return seed if rank() == 0 else (seed + 1_000_003 * rank()) % (2**63)


def check_world_batch(name: str, batch_size: int) -> None:
    """``ValueError`` naming ``name`` when a global batch of ``batch_size`` cannot give every rank a row."""
    if batch_size < world_size():
        raise ValueError(f"`{name}` must be >= the number of processes ({world_size()}), got {batch_size}.")


def local_rows(global_rows: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous shard of one global batch of indices (all of it without a group)."""
    if not is_distributed():
        return global_rows
    start, stop = shard_bounds(len(global_rows))
    return global_rows[start:stop]


__all__ = [
    "BatchShards",
    "barrier",
    "broadcast_module",
    "check_world_batch",
    "convert_batchnorm",
    "gather_with_local_grad",
    "global_batchnorm",
    "global_dropout",
    "init_from_env",
    "is_distributed",
    "is_main_process",
    "launched_by_torchrun",
    "local_rows",
    "local_share",
    "rank",
    "rank_seed",
    "shard_bounds",
    "shutdown",
    "sum_over_ranks",
    "sum_tensors_over_ranks",
    "sync_gradients",
    "world_size",
]
