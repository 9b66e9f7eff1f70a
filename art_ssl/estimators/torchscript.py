"""
TorchScript encoders (opt-in only: a TorchScript file is a program, and loading it runs that program's code).

Forward hooks cannot be registered on a ScriptModule, and its compiled ``forward`` would not call Python hooks
anyway, so layer attacks (PAP on ``stem``, SSP on ``layer2``) and BadEncoder/distillation could not see inside
one. :class:`ScriptedEncoder` re-runs the archive's top-level children one after another, each inside a plain
``nn.Module`` shell that hooks can attach to, when that chain reproduces the archive's own output; otherwise it
calls the archive whole and layer look-ups fail with a message saying why.
"""

from __future__ import annotations

import logging
import os

import torch
from torch import nn

logger = logging.getLogger(__name__)


class _Stage(nn.Module):
    """A plain-module shell around one scripted child, so that forward hooks can be registered on it."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


class ScriptedEncoder(nn.Module):
    """
    A TorchScript encoder as an ordinary module: ``requires_grad_``, ``train``/``eval``, ``deepcopy`` and, where the
    archive's forward is a chain of its children, forward hooks on those children by their names.

    :param scripted: The loaded ``torch.jit`` module.
    :param chain: Names of the top-level children whose composition equals ``scripted`` (``None``: call it whole).
    """

    def __init__(self, scripted: nn.Module, chain: list[str] | None) -> None:
        super().__init__()
        self.chain = chain
        if chain is None:
            self.scripted = scripted
        else:
            for name in chain:
                self.add_module(name, _Stage(getattr(scripted, name)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.chain is None:
            return self.scripted(x)
        for name in self.chain:
            x = getattr(self, name)(x)
        return torch.flatten(x, 1) if x.ndim > 2 else x


def load_torchscript(path: str | os.PathLike, input_shape: tuple[int, int, int]) -> ScriptedEncoder:
    """
    Load a TorchScript archive (this runs the file's code) and wrap it as a :class:`ScriptedEncoder`.

    :param path: The archive (``torch.jit.save``).
    :param input_shape: ``(C, H, W)`` used to check that the chain of children reproduces the archive's output.
    :raises ValueError: not a TorchScript archive, or its output is not (N, D) embeddings.
    """
    try:
        scripted = torch.jit.load(str(path), map_location="cpu").eval()
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"'{path}' is not a loadable TorchScript archive: {err}") from err
    return wrap_scripted(scripted, input_shape, name=str(path))


def wrap_scripted(scripted: nn.Module, input_shape: tuple[int, ...], name: str = "model") -> ScriptedEncoder:
    """Wrap an already loaded ScriptModule as a :class:`ScriptedEncoder` (see :func:`load_torchscript`)."""
    path = name
    was_training = scripted.training
    scripted.eval()
    probe = torch.rand((2, *input_shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        try:
            reference = scripted(probe)
        except RuntimeError as err:
            raise ValueError(f"TorchScript encoder '{path}' fails on {tuple(input_shape)} inputs: {err}") from err
        if reference.ndim != 2:
            raise ValueError(f"TorchScript encoder '{path}' must return (N, D) embeddings, got {reference.shape}.")
        names = [name for name, _ in scripted.named_children()]
        chain = names if names and _chain_matches(scripted, names, probe, reference) else None
    if chain is None:
        logger.warning("'%s': forward is not a chain of its children; layer hooks (PAP, SSP) are unavailable.", path)
    return ScriptedEncoder(scripted, chain).train(was_training)


def _chain_matches(scripted: nn.Module, names: list[str], probe: torch.Tensor, reference: torch.Tensor) -> bool:
    x = probe
    try:
        for name in names:
            x = getattr(scripted, name)(x)
    except (RuntimeError, TypeError, AttributeError):
        return False
    x = torch.flatten(x, 1) if x.ndim > 2 else x
    return x.shape == reference.shape and torch.allclose(x, reference, atol=1e-5, rtol=1e-4)
