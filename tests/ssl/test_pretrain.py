import math

import numpy as np
import pytest
import torch

from art_ssl.models import SmallCNN
from art_ssl.ssl import BYOL, METHODS, MoCo, nt_xent, pretrain


@pytest.fixture(scope="module")
def unlabelled(fmnist28):
    return fmnist28.x_train[:768]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_and_is_seeded(unlabelled, method):
    def run():
        torch.manual_seed(0)
        encoder = SmallCNN(1, (8, 16), stem_stride=2)
        return pretrain(
            encoder, unlabelled, method, nb_epochs=2, batch_size=128, seed=1, device_type="cpu", verbose=False
        )

    first, second = run(), run()
    assert list(first.history.columns) == ["epoch", "loss", "lr", "seconds"] and len(first.history) == 2
    assert np.isfinite(first.history["loss"]).all()
    np.testing.assert_array_equal(first.history["loss"], second.history["loss"])
    for a, b in zip(first.encoder.state_dict().values(), second.encoder.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not first.encoder.training


def test_simclr_loss_falls_with_training_with_either_implementation_of_the_views(unlabelled):
    """The loss falls with the kornia views and with the batched ones, by a similar amount (same distributions)."""
    drops = {}
    for implementation in ("kornia", "batched"):
        torch.manual_seed(0)
        result = pretrain(
            SmallCNN(1, (8, 16), 2),
            unlabelled,
            "simclr",
            nb_epochs=4,
            batch_size=128,
            seed=0,
            device_type="cpu",
            verbose=False,
            warmup_epochs=0.5,
            augmentation=implementation,
        )
        losses = result.history["loss"].to_numpy()
        assert losses[-1] < losses[0] - 0.1, implementation
        drops[implementation] = losses[0] - losses[-1]
    assert math.isclose(drops["batched"], drops["kornia"], rel_tol=0.5), drops


def test_nt_xent_by_hand():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # identical pairs: each view's positive has cosine 1, the two negatives cosine 0 and 1 (other view's pair)...
    loss = nt_xent(z, z.clone(), temperature=1.0)
    # row 0 of the 4x4 similarity (diagonal masked): [-, 0, 1, 0] -> positive index 2
    expected = -torch.log(torch.exp(torch.tensor(1.0)) / (torch.exp(torch.tensor(1.0)) + 2))
    torch.testing.assert_close(loss, expected)


def test_byol_target_follows_online_network_by_ema():
    encoder = SmallCNN(1, (4,), 2)
    byol = BYOL(encoder, 4, tau_base=0.9)
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(1.0)
    before = [p.clone() for p in byol.target_encoder.parameters()]
    byol.step_end(progress=0.0)  # tau = tau_base at the start
    for p_t, p_old, p_o in zip(byol.target_encoder.parameters(), before, encoder.parameters(), strict=True):
        torch.testing.assert_close(p_t, 0.9 * p_old + 0.1 * p_o)


def test_moco_queue_is_fifo_and_filled_queue_adds_negatives():
    torch.manual_seed(0)
    moco = MoCo(SmallCNN(1, (4,), 2), 4, proj_dim=3, queue_size=5)
    assert int(moco.queue_filled) == 0
    keys = torch.eye(3).repeat(2, 1)[:4] * 2  # 4 keys, normalised on entry
    moco._enqueue(keys)
    moco._enqueue(keys[:3] * -1)  # wraps around: slots 4, 0, 1
    assert int(moco.queue_filled) == 5 and int(moco.queue_ptr) == 2
    expected = torch.tensor([[0.0, -1, 0], [0, 0, -1], [0, 0, 1], [1, 0, 0], [-1, 0, 0]])
    torch.testing.assert_close(moco.queue, expected)
    # With an empty queue the loss is in-batch InfoNCE; with a full one the queue's keys enlarge the denominator.
    q = torch.tensor([[1.0, 0, 0], [0, 1, 0]])
    k = q.clone()
    moco.queue_filled.zero_()
    empty = moco._contrast(q, k)
    moco.queue_filled.fill_(5)
    full = moco._contrast(q, k)
    t = moco.temperature
    row0 = torch.tensor([1.0, 0.0]) / t  # q0 against k0 (positive), k1
    torch.testing.assert_close(empty, -torch.log_softmax(row0, 0)[0])
    assert full > empty


def test_moco_key_encoder_follows_by_momentum():
    encoder = SmallCNN(1, (4,), 2)
    moco = MoCo(encoder, 4, momentum=0.9)
    before = [p.clone() for p in moco.key_encoder.parameters()]
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(1.0)
    moco.step_end(progress=0.3)
    for p_k, p_old, p_o in zip(moco.key_encoder.parameters(), before, encoder.parameters(), strict=True):
        torch.testing.assert_close(p_k, 0.9 * p_old + 0.1 * p_o)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"method": "dino"}, ValueError, "`method`"),
        ({"encoder": "resnet"}, TypeError, "`encoder`"),
        ({"x": np.zeros((10, 28, 28), np.float32)}, ValueError, "`x`"),
        ({"batch_size": 10_000}, ValueError, "`batch_size`"),
        ({"nb_epochs": 0}, ValueError, "`nb_epochs`"),
        ({"optimizer": "lion"}, ValueError, "`optimizer`"),
        ({"lr": -1.0}, ValueError, "`lr`"),
        ({"seed": -1}, ValueError, "`seed`"),
        ({"augmentation": "torchvision"}, ValueError, "`augmentation`"),
        ({"augmentation": 3}, TypeError, "`augmentation`"),
    ],
)
def test_bad_arguments(unlabelled, kwargs, error, match):
    args = {
        "encoder": SmallCNN(1, (4,), 2),
        "x": unlabelled,
        "method": "simclr",
        "device_type": "cpu",
        "verbose": False,
        "batch_size": 128,
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        pretrain(**args)
