"""Encoders (the zoo's small ResNet-18, torchvision-layout ResNets, a small CNN) and the downstream heads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from art_ssl.models.cnn import SmallCNN
from art_ssl.models.heads import MLPHead, linear_head
from art_ssl.models.resnet import ResNet18
from art_ssl.models.torchvision_resnet import TORCHVISION_ARCHS, TorchvisionResNet

# The zoo's own ResNet-18 (``stem.0``/``shortcut`` key names, ``width`` and ``stem_stride`` parameters).
ZOO_RESNET = "zoo_resnet18"

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    ZOO_RESNET: ResNet18,
    "small_cnn": SmallCNN,
    **TORCHVISION_ARCHS,
}


def canonical_arch(arch: str, kwargs: dict[str, Any] | None = None) -> str:
    """
    The architecture name ``arch`` means. Files and metadata written before the torchvision-layout ResNets existed
    call the zoo's ResNet ``"resnet18"`` and always carry its ``width``/``stem_stride``; those still mean the zoo's.
    """
    if arch == "resnet18" and kwargs and ({"width", "stem_stride"} & set(kwargs)):
        return ZOO_RESNET
    return arch


def build_encoder(arch: str, **kwargs: Any) -> nn.Module:
    """
    Build an encoder by architecture name.

    :param arch: One of ``ARCHITECTURES``: ``"zoo_resnet18"`` (the zoo's), ``"small_cnn"``, ``"resnet18"``,
                 ``"resnet34"``, ``"resnet50"`` (torchvision layout, ImageNet stem) and their ``_cifar`` variants
                 (CIFAR stem).
    :param kwargs: Constructor arguments of that architecture.
    """
    if not isinstance(arch, str) or canonical_arch(arch, kwargs) not in ARCHITECTURES:
        raise ValueError(f"`arch` must be one of {sorted(ARCHITECTURES)}, got {arch!r}.")
    return ARCHITECTURES[canonical_arch(arch, kwargs)](**kwargs)


__all__ = [
    "ARCHITECTURES",
    "MLPHead",
    "ResNet18",
    "SmallCNN",
    "TorchvisionResNet",
    "ZOO_RESNET",
    "build_encoder",
    "canonical_arch",
    "linear_head",
]
