import pytest
import torch
from torch import nn

from art_ssl.models import MLPHead, ResNet18, SmallCNN, TorchvisionResNet, build_encoder, linear_head


def test_resnet18_is_a_resnet18_for_small_inputs():
    model = ResNet18(in_channels=3, width=64)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(11.17e6, rel=0.01)  # ResNet-18 body
    assert model.stem[0].kernel_size == (3, 3) and not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 512)
    small = ResNet18(in_channels=1, width=16, stem_stride=2)
    assert small(torch.zeros(2, 1, 64, 64)).shape == (2, 128) and small.feature_dim == 128
    assert small.stem(torch.zeros(1, 1, 64, 64)).shape == (1, 16, 32, 32)
    assert small(torch.zeros(2, 1, 28, 28)).shape == (2, 128)


def test_small_cnn_and_heads():
    cnn = SmallCNN(1, (8, 16, 32), stem_stride=2)
    assert cnn(torch.zeros(2, 1, 64, 64)).shape == (2, 32)
    assert linear_head(32, 10)(torch.zeros(2, 32)).shape == (2, 10)
    mlp = MLPHead(32, 10)
    assert [m.out_features for m in mlp.modules() if isinstance(m, nn.Linear)] == [512, 512, 10]
    assert sum(isinstance(m, nn.Dropout) for m in mlp.modules()) == 2


@pytest.mark.parametrize(
    "build, error",
    [
        (lambda: ResNet18(width=0), ValueError),
        (lambda: ResNet18(in_channels=1.5), TypeError),
        (lambda: ResNet18(stem_stride=3), ValueError),
        (lambda: SmallCNN(widths=()), ValueError),
        (lambda: MLPHead(8, 2, dropout=1.0), ValueError),
        (lambda: linear_head(8, True), TypeError),
        (lambda: build_encoder("vit"), ValueError),
    ],
)
def test_bad_model_arguments(build, error):
    with pytest.raises(error):
        build()


@pytest.mark.parametrize(
    "arch, params, dim",
    [
        ("resnet18_cifar", 11_168_832, 512),
        ("resnet18", 11_176_512, 512),
        ("resnet34", 21_284_672, 512),
        ("resnet50", 23_508_032, 2048),
    ],
)
def test_torchvision_layout_resnets_match_torchvision_parameter_counts(arch, params, dim):
    # torchvision's resnet18/34/50 have 11,689,512 / 21,797,672 / 25,557,032 parameters with their 1000-way fc
    # (513,000 / 513,000 / 2,049,000); the CIFAR stem's 3x3 conv has 7,680 fewer weights than the 7x7 one.
    model = build_encoder(arch)
    assert sum(p.numel() for p in model.parameters()) == params and model.feature_dim == dim
    keys = list(model.state_dict())
    assert keys[:2] == ["conv1.weight", "bn1.weight"] and "layer2.0.downsample.0.weight" in keys
    assert not any(k.startswith(("fc.", "stem.")) for k in keys)
    side = 32
    out = model.eval()(torch.zeros(1, 3, side, side))
    assert out.shape == (1, dim)


def test_stems_and_legacy_names():
    assert build_encoder("resnet18_cifar").conv1.kernel_size == (3, 3)
    assert build_encoder("resnet18_cifar", stem_padding=2).conv1.padding == (2, 2)
    assert isinstance(build_encoder("resnet50").maxpool, nn.MaxPool2d)
    assert isinstance(build_encoder("resnet18", width=8, stem_stride=1), ResNet18)  # older files' zoo name
    with pytest.raises(ValueError, match="stem"):
        TorchvisionResNet(18, stem="vgg")
    with pytest.raises(ValueError, match="depth"):
        TorchvisionResNet(101)
