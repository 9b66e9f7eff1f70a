"""BadEncoder and its triggers: placement and scaling, a real backdoor on a small encoder, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_ssl.attacks.poisoning import BadEncoder, Trigger, square_trigger
from art_ssl.metrics import attack_success_rate
from tests.conftest import BACKDOOR_TARGET as TARGET
from tests.conftest import linear_head_on


@pytest.mark.parametrize(
    "shape, size, start",
    [((3, 32, 32), 10, 21), ((1, 64, 64), 20, 42), ((1, 28, 28), 9, 18)],
)
def test_square_trigger_scales_the_official_geometry(shape, size, start):
    # Official trigger: 10x10 white square at offset 21 of a 32x32 image (1-pixel margin); scaled with the side.
    trigger = square_trigger(shape)
    rows, cols = np.nonzero(trigger.mask[0])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (start, start + size - 1, start, start + size - 1)
    assert trigger.mask.sum() == size * size and trigger.pattern.shape == shape


def test_trigger_replaces_only_its_pixels_at_each_corner():
    x = np.random.default_rng(0).uniform(0, 0.5, (3, 1, 16, 16)).astype(np.float32)
    for corner, (r, c) in {
        "bottom_right": (11, 11),
        "bottom_left": (11, 1),
        "top_right": (1, 11),
        "top_left": (1, 1),
    }.items():
        trigger = square_trigger((1, 16, 16), size=4, margin=1, corner=corner)
        out = trigger.apply(x)
        assert np.all(out[:, :, r : r + 4, c : c + 4] == 1.0)
        outside = trigger.mask[0] == 0
        np.testing.assert_array_equal(out[:, 0][:, outside], x[:, 0][:, outside])
        torch.testing.assert_close(trigger.apply_torch(torch.from_numpy(x)), torch.from_numpy(out))


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"corner": "middle"}, "corner"),
        ({"size": 30}, "fit"),
        ({"size": 0}, "size"),
        ({"margin": -1}, "margin"),
        ({"value": float("nan")}, "value"),
    ],
)
def test_square_trigger_rejects_bad_arguments(kwargs, error):
    with pytest.raises(ValueError, match=error):
        square_trigger((1, 28, 28), **kwargs)


def test_trigger_rejects_bad_masks():
    with pytest.raises(ValueError, match="all zeros"):
        Trigger(np.zeros((1, 4, 4)), np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Trigger(np.full((1, 4, 4), 2.0), np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match="match"):
        Trigger(np.ones((1, 4, 4)), np.ones((1, 5, 5)))


def _asr(classifier, attack: BadEncoder, data) -> float:
    x_bd, y_target = attack.poison(data.x_test)
    assert np.all(y_target == TARGET)
    return attack_success_rate(classifier.predict(x_bd).argmax(1), TARGET, data.y_test, exclude_target_class=True)


def test_bad_encoder_plants_a_backdoor_that_downstream_models_inherit(backdoored, pristine_encoder, fmnist28):
    attack, encoder, backdoored_head = backdoored
    clean_head = linear_head_on(pristine_encoder, fmnist28)
    clean_acc = np.mean(clean_head.predict(fmnist28.x_test).argmax(1) == fmnist28.y_test)
    backdoored_acc = np.mean(backdoored_head.predict(fmnist28.x_test).argmax(1) == fmnist28.y_test)
    asr_clean, asr_backdoored = _asr(clean_head, attack, fmnist28), _asr(backdoored_head, attack, fmnist28)
    assert asr_clean < 0.1  # the trigger alone does not send inputs to the target class
    assert asr_backdoored > 0.8  # measured 0.96
    assert abs(backdoored_acc - clean_acc) < 0.03  # utility kept (measured 0.836 vs 0.850)
    # the losses fell: triggered inputs moved towards the reference (cosine similarities, so losses are -s)
    assert attack.history_["loss0"].iloc[-1] < attack.history_["loss0"].iloc[0] - 0.05
    # the clean encoder was left untouched
    assert not torch.equal(next(pristine_encoder.model.parameters()), next(encoder.model.parameters()))


def test_bad_encoder_is_seeded_and_keeps_batchnorm_statistics(trained_encoder, fmnist28):
    ref = fmnist28.x_train[fmnist28.y_train == TARGET][:1]
    runs = [
        BadEncoder(
            trained_encoder, reference_inputs=ref, nb_epochs=1, batch_size=64, seed=3, verbose=False
        ).poison_estimator(fmnist28.x_train[:128])
        for _ in range(2)
    ]
    for a, b in zip(runs[0].model.state_dict().values(), runs[1].model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    clean_bn = [m for m in trained_encoder.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    bd_bn = [m for m in runs[0].model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for c, b in zip(clean_bn, bd_bn, strict=True):
        torch.testing.assert_close(c.running_mean, b.running_mean)
        torch.testing.assert_close(c.weight, b.weight)


def test_bad_encoder_default_reference_and_several_targets(trained_encoder, fmnist28):
    attack = BadEncoder(trained_encoder, target=[1, 7], nb_epochs=1, batch_size=64, verbose=False)
    assert [t.mask[0, -2, -2] for t in attack.triggers] == [1.0, 0.0]  # bottom-right, then bottom-left
    attack.poison_estimator(fmnist28.x_train[:64])
    assert len(attack.reference_inputs_) == 2 and attack.reference_inputs_[0].shape == (1, 1, 28, 28)
    x_bd, y = attack.poison(fmnist28.x_test[:5], target_index=1)
    assert np.all(y == 7) and np.all(x_bd[:, 0, -6:-2, 2:6] == 1.0)


@pytest.mark.parametrize(
    "kwargs, error, exc",
    [
        ({"lambda1": -1.0}, "lambda1", ValueError),
        ({"nb_epochs": 0}, "nb_epochs", ValueError),
        ({"target": [1, 2], "reference_inputs": [np.zeros((1, 1, 28, 28), np.float32)]}, "targets", ValueError),
        ({"trigger": "square"}, "Trigger", TypeError),
        ({"trigger": square_trigger((1, 32, 32))}, "shape", ValueError),
        ({"reference_inputs": np.zeros((1, 1, 32, 32), np.float32)}, "reference_inputs", ValueError),
        ({"target": -1}, "target", ValueError),
    ],
)
def test_bad_encoder_rejects_bad_parameters(trained_encoder, kwargs, error, exc):
    with pytest.raises(exc, match=error):
        BadEncoder(trained_encoder, **kwargs)


def test_bad_encoder_needs_an_encoder(trained_classifier, trained_encoder):
    with pytest.raises(Exception, match="PyTorchEncoder"):
        BadEncoder(trained_classifier)
    attack = BadEncoder(trained_encoder, nb_epochs=1, verbose=False)
    with pytest.raises(ValueError, match="target_index"):
        attack.apply_trigger(np.zeros((1, 1, 28, 28), np.float32), target_index=1)
    with pytest.raises(ValueError, match="shape"):
        attack.poison_estimator(np.zeros((4, 1, 32, 32), np.float32))
