"""
ResNet-18/34/50 in torchvision's parameter names, written without torchvision (which does not install everywhere).

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (Table 1), as torchvision implements it
("ResNet v1.5": the stride of a bottleneck sits on its 3x3 convolution). The key names are torchvision's
(``conv1``, ``bn1``, ``layerN.M.conv1/bn1/...``, ``layerN.0.downsample.0/1``) so public checkpoints load without
renaming; the classifier ``fc`` is dropped (``forward`` returns the pooled 512- or 2048-d features), as every SSL
code base does with ``fc = nn.Identity()``.

Two stems: the ImageNet one (7x7/2 convolution and 3x3/2 max-pool) and the CIFAR one (3x3/1 convolution, no
max-pool) that solo-learn, Gen-AF, AdvEncoder and BadEncoder use for 32x32 inputs. solo-learn pads its CIFAR stem by
2 pixels (``stem_padding=2``), BadEncoder and most others by 1; the weights are the same shape either way, the
embeddings are not, so the padding is a parameter. Parameter-free ``stem`` (after the stem) and ``avgpool`` modules
give attacks that hook a layer by name (PAP's ``"stem"``, SSP's ``"layer2"``) the same names as the zoo's ResNet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from art_ssl.core.checks import check_positive_int


class TVBasicBlock(nn.Module):
    """Two 3x3 convolutions and a residual connection (ResNet-18/34), torchvision's names."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _downsample(in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class TVBottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, and a residual connection (ResNet-50), torchvision's names."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_planes, planes * 4, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def _downsample(in_planes: int, out_planes: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes))


# blocks per stage (He et al. 2016, Table 1)
DEPTHS: dict[int, tuple[type[TVBasicBlock | TVBottleneck], tuple[int, int, int, int]]] = {
    18: (TVBasicBlock, (2, 2, 2, 2)),
    34: (TVBasicBlock, (3, 4, 6, 3)),
    50: (TVBottleneck, (3, 4, 6, 3)),
}


class TorchvisionResNet(nn.Module):
    """
    ResNet feature extractor with torchvision's key names and no ``fc``; ``forward`` returns (N, 512) for depths
    18/34 and (N, 2048) for 50.

    Named children usable as ``layer``: ``conv1``, ``bn1``, ``relu``, ``maxpool``, ``stem`` (the stem's output),
    ``layer1`` ... ``layer4``, ``avgpool``.

    :param depth: 18, 34 or 50.
    :param stem: ``"imagenet"`` (7x7/2 convolution + 3x3/2 max-pool) or ``"cifar"`` (3x3/1 convolution, no max-pool).
    :param in_channels: Input channels (3 for RGB).
    :param stem_padding: Padding of the CIFAR stem's 3x3 convolution (1; solo-learn uses 2). Ignored by ``"imagenet"``.
    """

    if TYPE_CHECKING:  # registered by name in __init__ (add_module); not a runtime annotation, which TorchScript reads
        layer1: nn.Sequential
        layer2: nn.Sequential
        layer3: nn.Sequential
        layer4: nn.Sequential

    def __init__(self, depth: int = 18, stem: str = "imagenet", in_channels: int = 3, stem_padding: int = 1) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"`depth` must be one of {sorted(DEPTHS)}, got {depth!r}.")
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"`stem` must be 'imagenet' or 'cifar', got {stem!r}.")
        check_positive_int("in_channels", in_channels)
        if stem_padding not in (0, 1, 2):
            raise ValueError(f"`stem_padding` must be 0, 1 or 2, got {stem_padding!r}.")
        self.depth, self.stem_kind, self.in_channels, self.stem_padding = depth, stem, in_channels, stem_padding
        # registered in torchvision's order (conv1, bn1, relu, maxpool): the order of the children is the order of
        # the forward pass, which a TorchScript export relies on to expose hookable stages (estimators.torchscript)
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=stem_padding, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1) if stem == "imagenet" else nn.Identity()
        self.stem = nn.Identity()  # a name for the stem's output; no parameters, so no key
        block, counts = DEPTHS[depth]
        in_planes = 64
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), counts, strict=True)):
            layers = []
            for j in range(count):
                layers.append(block(in_planes, planes, stride=2 if i > 0 and j == 0 else 1))
                in_planes = planes * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = in_planes
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation: He-normal (fan_out) convolutions, BatchNorm at identity
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def _factory(depth: int, stem: str):
    def build(in_channels: int = 3, stem_padding: int = 1) -> TorchvisionResNet:
        return TorchvisionResNet(depth, stem, in_channels=in_channels, stem_padding=stem_padding)

    build.__name__ = f"resnet{depth}{'_cifar' if stem == 'cifar' else ''}"
    build.__doc__ = f"ResNet-{depth}, torchvision key layout, {stem} stem, no fc."
    return build


TORCHVISION_ARCHS = {
    f"resnet{d}{suffix}": _factory(d, stem)
    for d in (18, 34, 50)
    for suffix, stem in (("", "imagenet"), ("_cifar", "cifar"))
}
