import numpy as np
import pytest
import torch

from art_ssl.core.frequency import high_pass, radial_mask
from art_ssl.core.kmeans import assign, spherical_kmeans
from art_ssl.core.losses import activation_energy, feature_mse, info_nce, negative_cosine
from art_ssl.core.modes import evaluating
from art_ssl.core.perturbation import apply_perturbation, corner_mask, paste_patch, project_linf, uniform_noise
from art_ssl.core.universal import FreePerturbation, learn_universal


def test_sign_ascent_finds_the_corner_of_the_ball():
    # maximise sum(w * delta): the optimum is eps * sign(w)
    w = torch.tensor([1.0, -2.0, 0.5, -0.1]).view(1, 1, 2, 2)
    source = FreePerturbation((1, 2, 2), eps=0.1, generator=torch.Generator().manual_seed(0))
    x = np.zeros((8, 1, 2, 2), np.float32)
    result = learn_universal(
        x,
        objective=lambda xb, x_adv, apply: ((x_adv - xb) * w).sum(),
        source=source,
        update="sign",
        step_size=0.05,
        nb_epochs=5,
        batch_size=4,
        generator=torch.Generator().manual_seed(0),
        device=torch.device("cpu"),
        clip_values=None,
    )
    torch.testing.assert_close(result.noise, 0.1 * w.sign())
    assert result.steps == 10 and len(result.history) == 5


def test_adam_update_and_early_stop():
    class Source(FreePerturbation):
        pass

    source = Source((1, 2, 2), eps=1.0, generator=torch.Generator().manual_seed(0), init="zero")
    calls = []

    def stop(delta):
        calls.append(delta.clone())
        return len(calls) == 2

    result = learn_universal(
        np.zeros((10, 1, 2, 2), np.float32),
        objective=lambda xb, x_adv, apply: -(x_adv - 0.3).pow(2).sum(),
        source=source,
        update="adam",
        step_size=0.05,
        nb_epochs=100,
        batch_size=5,
        generator=torch.Generator().manual_seed(0),
        device=torch.device("cpu"),
        stop=stop,
        check_every=3,
    )
    assert result.stopped_early and result.steps == 6
    assert 0 < result.noise.mean() < 0.3  # Adam moved towards the maximiser 0.3


def test_perturbation_helpers():
    x = torch.full((2, 1, 4, 4), 0.95)
    delta = torch.full((1, 1, 4, 4), 0.2)
    assert apply_perturbation(x, delta, (0, 1)).max() == 1.0
    assert apply_perturbation(x, delta, None).max() == pytest.approx(1.15)
    assert project_linf(torch.tensor([0.5, -0.5, 0.01]), 0.1).tolist() == pytest.approx([0.1, -0.1, 0.01])
    noise = uniform_noise((1000,), 0.1, torch.Generator().manual_seed(0))
    assert noise.abs().max() <= 0.1 and noise.min() < -0.09 and noise.max() > 0.09
    mask = corner_mask((8, 8), side=2, margin=1)
    assert mask.sum() == 4 and mask[0, 0, 5:7, 5:7].sum() == 4
    pasted = paste_patch(torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8), mask)
    assert pasted.sum() == 4
    with pytest.raises(ValueError, match="does not fit"):
        corner_mask((8, 8), side=8, margin=1)


def test_losses_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    torch.testing.assert_close(negative_cosine(a, a), torch.tensor([-1.0, -1.0]))
    assert activation_energy(torch.tensor([1.0, -3.0])) == 5.0
    assert feature_mse(torch.zeros(2), torch.ones(2)) == 1.0
    # two orthogonal pairs: row i's logits are [1/t, 0] around its positive
    t = 0.5
    expected = -torch.log(torch.exp(torch.tensor(1 / t)) / (torch.exp(torch.tensor(1 / t)) + 1))
    torch.testing.assert_close(info_nce(a, a, t), expected)


def test_high_pass_removes_constant_and_keeps_checkerboard():
    constant = torch.full((1, 1, 16, 16), 0.7)
    assert high_pass(constant, 4).abs().max() < 1e-5
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 1.0 - 0.5
    torch.testing.assert_close(high_pass(checker.view(1, 1, 16, 16), 4), checker.view(1, 1, 16, 16), atol=1e-5, rtol=0)
    assert radial_mask(64, 64, 8).sum() == pytest.approx(np.pi * 64, rel=0.1)


def test_kmeans_recovers_separated_groups():
    g = torch.Generator().manual_seed(0)
    centers = torch.eye(3) * 5
    labels = torch.arange(3).repeat_interleave(20)
    features = centers[labels] + 0.1 * torch.randn(60, 3, generator=g)
    found = assign(features, spherical_kmeans(features, 3, g))
    for c in range(3):
        assert len(found[labels == c].unique()) == 1
    assert len(found.unique()) == 3
    with pytest.raises(ValueError, match="`k`"):
        spherical_kmeans(features, 0, g)


def test_evaluating_restores_modes():
    model = torch.nn.Sequential(torch.nn.BatchNorm1d(2), torch.nn.Dropout())
    model.train()
    model[1].eval()
    with evaluating(model):
        assert not any(m.training for m in model.modules())
    assert model.training and model[0].training and not model[1].training
