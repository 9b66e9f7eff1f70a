import pytest
import torch
from torch import nn

from art_ssl.models import MLPHead, ResNet18, SmallCNN, build_encoder, linear_head


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
