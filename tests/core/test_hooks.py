import pytest
import torch
from torch import nn

from art_ssl.core.hooks import layer_outputs, resolve_layer
from art_ssl.models import ResNet18


class Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(4, 4), nn.ReLU(inplace=True), nn.Linear(4, 2)
        self.calls = []

    def forward(self, x):
        self.calls.append("a")
        x = self.a(x)
        self.calls.append("b")
        x = self.b(x)
        self.calls.append("c")
        return self.c(x)


def test_layer_outputs_stops_after_the_last_wanted_layer_and_removes_hooks():
    model = Counting()
    x = torch.randn(3, 4)
    out = layer_outputs(model, x, ["a"])
    torch.testing.assert_close(out["a"], model.a(x))
    assert model.calls == ["a"]  # the forward pass stopped after `a`
    assert all(not m._forward_hooks for m in model.modules())
    # without stopping early, an in-place ReLU after `a` overwrites its captured output; stopping keeps it intact
    model.calls.clear()
    both = layer_outputs(model, x, ["a", "b"], stop_early=False)
    assert model.calls == ["a", "b", "c"] and set(both) == {"a", "b"}


def test_resolve_layer_by_name_and_index():
    model = ResNet18(1, 8, 2)
    assert resolve_layer(model, "layer2") == "layer2"
    names = [n for n, _ in model.named_modules() if n]
    assert resolve_layer(model, 0) == names[0] and resolve_layer(model, -1) == names[-1]
    with pytest.raises(ValueError, match="`layer`"):
        resolve_layer(model, "layer9")
    with pytest.raises(TypeError, match="`layer`"):
        resolve_layer(model, 1.5)
    with pytest.raises(ValueError, match="`layer`"):
        layer_outputs(model, torch.zeros(1, 1, 16, 16), ["nope"])
