"""
TRADES and MART do what they are for: on a small real run (Fashion-MNIST at 16x16, a small CNN first trained on clean
images, then fine-tuned on 512 others for 2 epochs), each raises the white-box PGD robust accuracy over plain
fine-tuning (:class:`FineTuningTrainer`) with the same data, epochs, batch size and learning rates, while keeping the
benign accuracy far above chance (a collapsed, constant predictor would score RA = its class's frequency, ~0.1).

The attack is ART's own ``ProjectedGradientDescent`` (not art_ssl's PGD, which the trainers use inside), at the
training budget eps 0.06. Margins over five seeds (``python tools/trades_mart_margins.py``): RA gain over plain
fine-tuning 0.253-0.287 for TRADES and 0.277-0.310 for MART, BA >= 0.56; the assertions leave room below that.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from art.attacks.evasion import ProjectedGradientDescent
from art.estimators.classification import PyTorchClassifier

from art_ssl.data import load_task
from art_ssl.defences.trainer import FineTuningTrainer, MARTTrainer, TRADESTrainer
from art_ssl.estimators import encoder_classifier
from art_ssl.models import SmallCNN

SIZE, EPS, N_TRAIN, N_TEST = 16, 0.06, 512, 300
BUDGET = {
    "nb_epochs": 2,
    "batch_size": 32,
    "encoder_lr": 1e-3,
    "head_lr": 5e-3,
    "validation_pgd_steps": 0,
    "amp": False,
    "verbose": False,
}
ROBUST = {"eps": EPS, "step_size": EPS / 4, "pgd_steps": 3}
TRAINERS = {"finetune": FineTuningTrainer, "trades": TRADESTrainer, "mart": MARTTrainer}
MIN_RA_GAIN, MIN_BA = 0.15, 0.45


def data():
    return load_task("fashion_mnist_subset", size=SIZE)


def base_classifier(task) -> PyTorchClassifier:
    """A small CNN with a linear head, fine-tuned from scratch on 1,000 clean images (BA ~0.61, RA ~0.07)."""
    torch.manual_seed(0)
    encoder = SmallCNN(in_channels=1, widths=(8, 16), stem_stride=2)
    clf = encoder_classifier(
        encoder, 10, head="linear", freeze_encoder=False, input_shape=(1, SIZE, SIZE), device_type="cpu"
    )
    FineTuningTrainer(clf, seed=0, **{**BUDGET, "nb_epochs": 3}).fit(task.x_train[-1000:], task.y_train[-1000:])
    return clf


def fine_tuned(name: str, base: PyTorchClassifier, task, seed: int = 0) -> PyTorchClassifier:
    """A copy of ``base`` fine-tuned by trainer ``name`` on the ``seed``-th slice of 512 training images."""
    model = copy.deepcopy(base.model)
    clf = encoder_classifier(
        model.encoder, 10, head=model.head, freeze_encoder=False, input_shape=(1, SIZE, SIZE), device_type="cpu"
    )
    x, y = task.x_train[seed * N_TRAIN : (seed + 1) * N_TRAIN], task.y_train[seed * N_TRAIN : (seed + 1) * N_TRAIN]
    TRAINERS[name](clf, seed=seed, **BUDGET, **({} if name == "finetune" else ROBUST)).fit(x, y)
    return clf


def accuracies(clf: PyTorchClassifier, task) -> tuple[float, float]:
    """(benign accuracy, white-box PGD robust accuracy) on the first 300 test images; PGD: ART's, 10 steps."""
    x, y = task.x_test[:N_TEST], task.y_test[:N_TEST]
    pgd = ProjectedGradientDescent(
        clf, eps=EPS, eps_step=EPS / 4, max_iter=10, num_random_init=0, batch_size=256, verbose=False
    )
    ba = float(np.mean(clf.predict(x, batch_size=256).argmax(1) == y))
    ra = float(np.mean(clf.predict(pgd.generate(x, y=y), batch_size=256).argmax(1) == y))
    return ba, ra


@pytest.fixture(scope="module")
def setting():
    task = data()
    base = base_classifier(task)
    return task, base, accuracies(fine_tuned("finetune", base, task), task)


@pytest.mark.parametrize("name", ["trades", "mart"])
def test_robust_trainer_raises_pgd_accuracy_over_plain_fine_tuning(setting, name):
    task, base, (ba_plain, ra_plain) = setting
    ba, ra = accuracies(fine_tuned(name, base, task), task)
    assert ba_plain > MIN_BA, ba_plain  # the comparison is with a working classifier
    assert ba > MIN_BA, (name, ba)  # not a collapsed predictor
    assert ra > ra_plain + MIN_RA_GAIN, (name, ra, ra_plain)
