"""
ResNet-18 for small images (28x28 to 64x64), as used by the seed papers' CIFAR-style encoders.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, with the CIFAR adaptation used by SimCLR/BYOL
code bases: a 3x3 stem with no max-pool. ``width`` scales every stage (64 is the standard ResNet-18) and
``stem_stride=2`` halves the resolution once, so a 64x64 input costs what a 32x32 one does.
"""

from __future__ import annotations

import torch
from torch import nn

from art_ssl.core.checks import check_positive_int


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34 block)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """
    ResNet-18 feature extractor for small inputs; ``forward`` returns pooled features of size ``8 * width``.

    Named children (usable as ``layer`` in :meth:`PyTorchEncoder.get_activations`): ``stem``, ``layer1`` ...
    ``layer4``, ``pool``.

    :param in_channels: Number of input channels (1 for Fashion-MNIST, 3 for CIFAR-10).
    :param width: Channels of the first stage; stages use ``width * (1, 2, 4, 8)``. 64 is the standard ResNet-18.
    :param stem_stride: Stride of the 3x3 stem convolution (1 or 2).
    """

    def __init__(self, in_channels: int = 3, width: int = 64, stem_stride: int = 1) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("width", width)
        if stem_stride not in (1, 2):
            raise ValueError(f"`stem_stride` must be 1 or 2, got {stem_stride!r}.")
        self.in_channels, self.width, self.stem_stride = in_channels, width, stem_stride
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        widths = [width, 2 * width, 4 * width, 8 * width]
        blocks, in_planes = [], width
        for i, planes in enumerate(widths):
            stride = 1 if i == 0 else 2
            blocks.append(nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1)))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = blocks
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.pool(x)
