"""A small convolutional encoder: three conv-BN-ReLU stages, a strided stem and global average pooling."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from art_ssl.core.checks import check_positive_int


class SmallCNN(nn.Module):
    """
    Small CNN feature extractor; ``forward`` returns pooled features of size ``widths[-1]``.

    Stage ``i`` is two 3x3 conv-BN-ReLU layers; every stage after the first halves the resolution. Named children:
    ``stem``, ``layer1`` ... ``layer{len(widths)}``, ``pool``.

    :param in_channels: Number of input channels.
    :param widths: Channels of each stage.
    :param stem_stride: Stride of the stem convolution (1 or 2).
    """

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = (32, 64, 128), stem_stride: int = 2) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        if len(widths) == 0:
            raise ValueError("`widths` must name at least one stage.")
        for w in widths:
            check_positive_int("widths", w)
        if stem_stride not in (1, 2):
            raise ValueError(f"`stem_stride` must be 1 or 2, got {stem_stride!r}.")
        self.in_channels, self.widths, self.stem_stride = in_channels, tuple(widths), stem_stride
        self.stem = _conv_bn_relu(in_channels, widths[0], stem_stride)
        in_planes = widths[0]
        for i, planes in enumerate(widths):
            stride = 1 if i == 0 else 2
            stage = nn.Sequential(_conv_bn_relu(in_planes, planes, stride), _conv_bn_relu(planes, planes, 1))
            self.add_module(f"layer{i + 1}", stage)
            in_planes = planes
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i in range(len(self.widths)):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.pool(x)


def _conv_bn_relu(in_planes: int, planes: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(planes),
        nn.ReLU(inplace=True),
    )
