"""Issue 16's fidelity points, each against a value computed the reference code's way: SSP's squared-feature
variant (PAP's baseline), UAPEPGD's step-then-check order (PAP's ``utils/uapepgd.py``), BadEncoder's reference
augmentation without a random resized crop."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from art.estimators.classification import PyTorchClassifier

from art_ssl.attacks.evasion import SSP, UAPEPGD
from art_ssl.attacks.poisoning import BadEncoder
from art_ssl.attacks.poisoning.bad_encoder import reference_augmentation
from art_ssl.core.perturbation import uniform_noise
from art_ssl.estimators import PyTorchEncoder
from art_ssl.models import SmallCNN


def tiny_encoder(seed=0):
    torch.manual_seed(seed)
    return PyTorchEncoder(
        SmallCNN(in_channels=1, widths=(4, 8, 8), stem_stride=1).eval(), (1, 16, 16), device_type="cpu"
    )


@pytest.mark.parametrize("squared", [False, True])
def test_ssp_objective_is_naseers_or_paps(squared):
    encoder = tiny_encoder()
    layer = [n for n, _ in encoder.model.named_children()][1]
    attack = SSP(encoder, layer=layer, squared=squared, verbose=False)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 16, 16, generator=g)
    x_adv = (x + 0.05 * torch.randn(4, 1, 16, 16, generator=g)).clamp(0, 1)
    got = float(attack._objective(g)(x, x_adv, None).detach())
    captured = []
    handle = dict(encoder.model.named_modules())[layer].register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.no_grad():
        encoder.model(x), encoder.model(x_adv)
    handle.remove()
    clean, adv = captured
    expected = F.mse_loss(adv.square(), clean.square()) if squared else F.mse_loss(adv, clean)
    assert np.isclose(got, float(expected), rtol=1e-5)
    with pytest.raises(ValueError, match="`squared`"):
        SSP(encoder, layer=layer, squared="yes")


class FixedLogits(torch.nn.Module):
    """A linear classifier on 2x2 grey images whose class 1 wins everywhere in [0, 1]."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[0.1, 0.2, -0.1, 0.3], [0.2, -0.1, 0.1, 0.4]]))
            self.linear.bias.copy_(torch.tensor([0.0, 5.0]))

    def forward(self, x):
        return self.linear(x.flatten(1))


@pytest.mark.parametrize("step_before_check", [True, False])
def test_uapepgd_steps_once_before_the_fooled_check_as_the_reference(step_before_check):
    """The label is 0 but the classifier says 1 whatever the input: the image is fooled from the start. The
    reference (PAP's loop) still takes one momentum sign step; checking first takes none."""
    classifier = PyTorchClassifier(
        FixedLogits(), torch.nn.CrossEntropyLoss(), (1, 2, 2), 2, clip_values=(0, 1), device_type="cpu"
    )  # on the CPU: the test calls the inner loop directly with CPU tensors
    attack = UAPEPGD(
        classifier,
        eps=0.1,
        step_size=0.01,
        momentum=0.5,
        weight_gain=1e-5,
        inner_steps=10,
        verbose=False,
        step_before_check=step_before_check,
    )
    x_base = torch.full((1, 1, 2, 2), 0.5)
    labels = torch.tensor([0])
    delta0 = attack._inner_attack(x_base, labels, 0.01, torch.Generator().manual_seed(3))
    start = uniform_noise((1, 1, 2, 2), 0.1, torch.Generator().manual_seed(3), x_base.device)
    if not step_before_check:
        torch.testing.assert_close(delta0, start)
        return
    # the reference's single step, by hand: v = beta*0 + gamma*(x + d0) + grad, d0 += alpha * sign(v)
    d = start.clone().requires_grad_(True)
    logits = FixedLogits()(x_base + d)
    loss = F.cross_entropy(F.normalize(logits, dim=1), labels)
    (grad,) = torch.autograd.grad(loss, d)
    expected = start + 0.01 * (1e-5 * (x_base + start) + grad).sign()
    torch.testing.assert_close(delta0, expected)


def test_badencoder_reference_augmentation_has_no_crop_unless_asked():
    names = {type(m).__name__ for m in reference_augmentation((16, 16), 1).modules()}
    assert "RandomResizedCrop" not in names and {"RandomHorizontalFlip", "ColorJitter"} <= names
    assert "RandomResizedCrop" in {type(m).__name__ for m in reference_augmentation((16, 16), 1, crop=True).modules()}
    colour = {type(m).__name__ for m in reference_augmentation((16, 16), 3).modules()}
    assert "RandomGrayscale" in colour and "RandomResizedCrop" not in colour
    # without a crop, every pixel of an augmented image comes from the same or the mirrored position: a one-pixel
    # dot stays on its row and in its column or the mirrored one
    x = torch.zeros(8, 1, 16, 16)
    x[:, :, 5, 3] = 1.0
    torch.manual_seed(0)
    out = reference_augmentation((16, 16), 1)(x)
    brightest = out.flatten(1).argmax(1)
    assert set(brightest.tolist()) <= {5 * 16 + 3, 5 * 16 + 12}
    encoder = tiny_encoder()
    assert BadEncoder(encoder, nb_epochs=1, verbose=False).reference_crop is False
    with pytest.raises(ValueError, match="`reference_crop`"):
        BadEncoder(encoder, reference_crop="no")
