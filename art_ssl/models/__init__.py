"""Encoders for small images and the downstream heads put on them."""
from __future__ import annotations

from typing import Any

from torch import nn

from art_ssl.models.cnn import SmallCNN
from art_ssl.models.heads import MLPHead, linear_head
from art_ssl.models.resnet import ResNet18

ARCHITECTURES: dict[str, type[nn.Module]] = {"resnet18": ResNet18, "small_cnn": SmallCNN}


def build_encoder(arch: str, **kwargs: Any) -> nn.Module:
    """
    Build an encoder by architecture name.

    :param arch: One of ``ARCHITECTURES`` (``"resnet18"``, ``"small_cnn"``).
    :param kwargs: Constructor arguments of that architecture.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"`arch` must be one of {sorted(ARCHITECTURES)}, got {arch!r}.")
    return ARCHITECTURES[arch](**kwargs)


__all__ = ["ARCHITECTURES", "MLPHead", "ResNet18", "SmallCNN", "build_encoder", "linear_head"]
