"""
The one mixed-precision policy of art_ssl: trainers, SSL pre-training, universal attacks and the audit all ask this
module whether and how to autocast, so ``amp=True`` means the same everywhere.

- ``amp=False``: float32.
- ``amp=True``: autocast to bfloat16 on a CPU whose oneDNN has bf16 kernels (AVX-512-BF16 or AMX) and on a CUDA
  device that supports bf16; float16 with a gradient scaler on older CUDA devices. A CPU without bf16 kernels raises
  ``ValueError`` (bf16 emulated in software is slower than float32 and would silently make the run slower).
- ``amp="auto"`` (the default): ``True`` only on hardware where bf16 was measured faster at the same accuracy: CPUs
  whose flags include one of :data:`AUTO_BF16_CPU_FLAGS` and CUDA devices with bf16. On an AMD EPYC with
  AVX-512-BF16 and no AMX, oneDNN runs bf16 convolutions on ``brg_conv_fwd:avx512_core_bf16`` (channels-last) and
  ``jit_bf16:avx512_core_bf16`` (NCHW), and a TRADES / Gen-AF / SimCLR / SSP step was 1.5-1.9x faster than float32
  (``evaluations/results/amp_speed.md``). CPUs with AVX-512 but no bf16 instructions (oneDNN emulates bf16 there)
  and everything else: float32.

Only the networks' forward passes are autocast (:func:`autocast_forward`, outputs returned as float32), so the
convolutions and matmuls run in bf16 while losses, PGD steps, regularisers, weights, optimiser states and gradients
w.r.t. inputs stay float32.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

# CPU flags with native bf16 dot products: AVX-512-BF16 (measured here, see the module docstring) and AMX-BF16 (tile
# units: the faster of the two in oneDNN; not measured by us, no such CPU was available).
AUTO_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where that file does not exist, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_bf16_supported() -> bool:
    """Whether torch's oneDNN has native bf16 kernels on this CPU (AVX-512-BF16, AVX-512 core or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


def cpu_has_amx() -> bool:
    """Whether the CPU has AMX-BF16 tile units (Intel Sapphire Rapids and later)."""
    return "amx_bf16" in cpu_flags()


def cpu_has_native_bf16() -> bool:
    """Whether the CPU has one of :data:`AUTO_BF16_CPU_FLAGS` (bf16 instructions rather than emulation)."""
    return any(flag in cpu_flags() for flag in AUTO_BF16_CPU_FLAGS)


def check_amp(name: str, value: object) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is ``True``, ``False`` or ``"auto"``."""
    if not (isinstance(value, bool) or value == "auto"):
        raise ValueError(f"`{name}` must be True, False or 'auto', got {value!r}.")


def amp_dtype(device: torch.device | str, amp: bool | str, name: str = "amp") -> torch.dtype | None:
    """
    The autocast dtype for ``amp`` on ``device``, or ``None`` for float32.

    :param device: Where the model runs.
    :param amp: ``True``, ``False`` or ``"auto"`` (see the module docstring).
    :param name: The user's parameter name, for the error message.
    :raises ValueError: ``amp`` is not one of the choices, or ``amp=True`` on a CPU without bf16 kernels.
    """
    check_amp(name, amp)
    device = torch.device(device)
    if amp is False:
        return None
    if device.type == "cuda":
        if amp == "auto" and not torch.cuda.is_bf16_supported():
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type != "cpu":
        if amp == "auto":
            return None
        raise ValueError(f"`{name}=True` is supported on CPU and CUDA devices, not {device.type!r}.")
    if amp == "auto":
        return torch.bfloat16 if cpu_has_native_bf16() and cpu_bf16_supported() else None
    if not cpu_bf16_supported():
        raise ValueError(
            f"`{name}=True` needs a CPU with bf16 kernels (AVX-512-BF16 or AMX); this one has none, and emulated "
            "bf16 is slower than float32. Use amp=False or amp='auto'."
        )
    return torch.bfloat16


def to_float(out: Any) -> Any:
    """Float32 copies of the reduced-precision tensors in ``out`` (a tensor, or a tuple/list/dict of them); float32
    and integer tensors are returned as they are."""
    if isinstance(out, torch.Tensor):
        return out.float() if out.dtype in (torch.bfloat16, torch.float16) else out
    if isinstance(out, (tuple, list)):
        return type(out)(to_float(o) for o in out)
    if isinstance(out, dict):
        return {k: to_float(v) for k, v in out.items()}
    return out


@contextmanager
def autocast_forward(
    modules: Iterable[nn.Module], device: torch.device | str, dtype: torch.dtype | None
) -> Iterator[None]:
    """
    Within the context, each module's ``forward`` runs under autocast to ``dtype`` and returns float32: the
    network's convolutions and matmuls use the fast precision while every loss, PGD step, graph regulariser and
    projection computed on its outputs stays float32 (what a bare ``torch.autocast`` around a whole loss would not
    do). The modules' own ``forward`` is restored on exit; ``dtype=None`` changes nothing.

    :param modules: The networks to autocast (e.g. an encoder and its head).
    :param device: Their device.
    :param dtype: ``torch.bfloat16``, ``torch.float16`` or ``None``.
    """
    if dtype is None:
        yield
        return
    device_type = torch.device(device).type
    saved: list[tuple[nn.Module, Any]] = []
    try:
        for module in modules:
            inner = module.forward
            saved.append((module, module.__dict__.get("forward")))

            def forward(*args: Any, _inner: Any = inner, **kwargs: Any) -> Any:
                with torch.autocast(device_type, dtype=dtype):
                    out = _inner(*args, **kwargs)
                return to_float(out)

            module.forward = forward
        yield
    finally:
        for module, previous in reversed(saved):
            if previous is None:
                del module.forward
            else:
                module.forward = previous


class GradScaling:
    """
    Loss scaling for float16 training on CUDA (bf16 and float32 need none): ``backward(loss)`` then
    ``step(optimizers)``. A thin wrapper so the training loops read the same with and without it.
    """

    def __init__(self, dtype: torch.dtype | None, device: torch.device | str) -> None:
        enabled = dtype == torch.float16 and torch.device(device).type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if enabled else None

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self, optimizers: list[torch.optim.Optimizer]) -> None:
        for optimizer in optimizers:
            if self.scaler is None:
                optimizer.step()
            else:
                self.scaler.step(optimizer)
        if self.scaler is not None:
            self.scaler.update()

    def state_dict(self) -> dict:
        return {} if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
