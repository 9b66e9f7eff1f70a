"""Shared fixtures: real Fashion-MNIST (the subset shipped in the package) and a small classifier trained on it."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from art_ssl.data import load_task
from art_ssl.estimators import PyTorchEncoder, encoder_classifier
from art_ssl.models import SmallCNN


@pytest.fixture(scope="session")
def fmnist28():
    """The shipped Fashion-MNIST subset at native 28x28 (5,000 train / 1,000 test)."""
    return load_task("fashion_mnist_subset", size=28)


@pytest.fixture(scope="session")
def trained_classifier(fmnist28):
    """A small CNN + linear head trained end to end for three epochs on 5,000 real images (~80% test accuracy)."""
    torch.manual_seed(0)
    np.random.seed(0)  # ART's fit shuffles with numpy's global generator
    encoder = SmallCNN(in_channels=1, widths=(16, 32, 64), stem_stride=2)
    classifier = encoder_classifier(
        encoder, nb_classes=10, freeze_encoder=False, input_shape=(1, 28, 28), learning_rate=3e-3, device_type="cpu"
    )
    classifier.fit(fmnist28.x_train, fmnist28.y_train, batch_size=64, nb_epochs=3)
    classifier.pristine_encoder = copy.deepcopy(classifier.model.encoder).eval()  # see `pristine_encoder`
    return classifier


@pytest.fixture(scope="session")
def trained_encoder(trained_classifier):
    """The encoder part of ``trained_classifier`` as an ART PyTorchEncoder."""
    return PyTorchEncoder(trained_classifier.model.encoder, (1, 28, 28), device_type="cpu")


@pytest.fixture
def test_batch(fmnist28):
    """200 real test images and labels."""
    return fmnist28.x_test[:200], fmnist28.y_test[:200]


def accuracy_of(classifier, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(classifier.predict(x, batch_size=256).argmax(1) == y))


BACKDOOR_TARGET = 1  # Fashion-MNIST "Trouser"


def linear_head_on(encoder, data):
    """A linear head trained on the frozen ``encoder`` (a copy), as BadEncoder's downstream user trains one."""
    from art_ssl.defences.trainer import FineTuningTrainer

    classifier = encoder_classifier(
        copy.deepcopy(encoder.model), 10, head="linear", freeze_encoder=True, input_shape=(1, 28, 28), device_type="cpu"
    )
    FineTuningTrainer(
        classifier,
        train_encoder=False,
        nb_epochs=20,
        batch_size=128,
        head_lr=1e-2,
        validation_pgd_steps=0,
        verbose=False,
    ).fit(data.x_train, data.y_train)
    return classifier


@pytest.fixture(scope="session")
def pristine_encoder(trained_classifier):
    """A private copy of ``trained_encoder`` as trained: other tests may run data through the shared encoder in
    training mode (BatchNorm statistics move), which would make the backdoor tests depend on test order."""
    return PyTorchEncoder(copy.deepcopy(trained_classifier.pristine_encoder), (1, 28, 28), device_type="cpu")


@pytest.fixture(scope="session")
def backdoored(pristine_encoder, fmnist28):
    """``(attack, backdoored encoder, linear head on it)``: BadEncoder with one Trouser reference and 1,000 shadow
    images, 20 epochs at lr 1e-2 (ASR 0.96 on the shipped subset, accuracy 0.836 against 0.850)."""
    from art_ssl.attacks.poisoning import BadEncoder

    reference = fmnist28.x_train[fmnist28.y_train == BACKDOOR_TARGET][:1]
    attack = BadEncoder(
        pristine_encoder,
        reference_inputs=reference,
        target=BACKDOOR_TARGET,
        nb_epochs=20,
        learning_rate=1e-2,
        batch_size=64,
        verbose=False,
    )
    encoder = attack.poison_estimator(fmnist28.x_train[:1000])
    return attack, encoder, linear_head_on(encoder, fmnist28)


class Denormalise(torch.nn.Module):
    """``x * std + mean``: undoes a ``(x - mean) / std`` preprocessing inside a model."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean


FMNIST_MEAN, FMNIST_STD = 0.286, 0.353


@pytest.fixture
def normalised_classifier(trained_classifier):
    """A fresh classifier with non-identity ART preprocessing ``(x - 0.286) / 0.353`` whose model undoes it first:
    in pixel space it computes exactly ``trained_classifier``'s function, so any code path that skips the
    preprocessing (or applies it twice) sees a different model and gives different numbers."""
    model = copy.deepcopy(trained_classifier.model)
    encoder = torch.nn.Sequential(Denormalise(FMNIST_MEAN, FMNIST_STD), model.encoder)
    return encoder_classifier(
        encoder,
        10,
        head=model.head,
        freeze_encoder=False,
        input_shape=(1, 28, 28),
        preprocessing=(FMNIST_MEAN, FMNIST_STD),
        device_type="cpu",
    )


def child_env() -> dict[str, str]:
    """Environment of a child Python process that imports this checkout's art_ssl first, keeping the caller's
    PYTHONPATH after it (where packages may live, e.g. wheels unpacked on a GPU machine)."""
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}


def evaluation_script(name: str, monkeypatch=None):
    """``evaluations/<name>.py`` loaded as a module. Scripts import their siblings (``presets``, ``attack_tables``) as
    a script run does; with ``monkeypatch`` the folder is put on ``sys.path`` for the test only."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "evaluations" / f"{name}.py"
    if monkeypatch is not None:
        monkeypatch.syspath_prepend(str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
