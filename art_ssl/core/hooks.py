"""Layer outputs by module name, with forward hooks that never outlive the call."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class _StopForward(Exception):
    """Raised by a hook to end the forward pass once every requested layer has fired."""


def resolve_layer(model: nn.Module, layer: int | str, layer_names: Sequence[str] | None = None) -> str:
    """Map a layer given by name or by index into ``layer_names`` (default: all named sub-modules) to its name."""
    names = list(layer_names) if layer_names is not None else [n for n, _ in model.named_modules() if n]
    if isinstance(layer, bool) or not isinstance(layer, (int, str)):
        raise TypeError(f"`layer` must be a module name (str) or an index (int), got {type(layer).__name__}.")
    if isinstance(layer, str):
        if layer not in names:
            raise ValueError(f"`layer` {layer!r} is not a module of the model; choose from {names[:12]}...")
        return layer
    if not -len(names) <= layer < len(names):
        raise ValueError(f"`layer` index {layer} is out of range for {len(names)} layers.")
    return names[layer]


def layer_outputs(
    model: nn.Module, x: torch.Tensor, names: Sequence[str], stop_early: bool = True
) -> dict[str, torch.Tensor]:
    """
    Run ``model(x)`` and return the outputs of the named sub-modules.

    The hooks are removed before returning. With ``stop_early`` the forward pass ends as soon as every requested
    layer has produced its output, which saves the rest of the network (an attack on the stem costs a stem) and
    keeps an in-place activation later in the network from overwriting a captured tensor.

    :param model: The network.
    :param x: Input batch, already preprocessed and on the model's device.
    :param names: Module names as in ``model.named_modules()``.
    :param stop_early: End the forward pass after the last requested layer (first call of each module).
    """
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(f"`layer` {missing} not found in the model; choose from {[n for n in modules if n][:12]}...")
    outputs: dict[str, torch.Tensor] = {}
    wanted = set(names)

    def make_hook(name: str):
        def hook(_module, _inputs, output):
            if name not in outputs or not stop_early:
                outputs[name] = output
            if stop_early and wanted.issubset(outputs):
                raise _StopForward

        return hook

    handles = [modules[n].register_forward_hook(make_hook(n)) for n in dict.fromkeys(names)]
    try:
        model(x)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def forward_with_layers(model: nn.Module, x: torch.Tensor, names: Sequence[str]) -> tuple[torch.Tensor, dict]:
    """``model(x)`` and the outputs of the named sub-modules from the same forward pass (differentiable)."""
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(f"`layers` {missing} not found in the model; choose from {[n for n in modules if n][:12]}...")
    outputs: dict[str, torch.Tensor] = {}

    def make_hook(name: str):
        def hook(_module, _inputs, output):
            outputs.setdefault(name, output)

        return hook

    handles = [modules[n].register_forward_hook(make_hook(n)) for n in dict.fromkeys(names)]
    try:
        out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return out, outputs
