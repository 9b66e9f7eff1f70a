"""Tiny data, trainer and encoder that both sides of the kill in ``test_resume.py`` build identically (the test
process and the child it kills); also used by ``tests/core/test_amp.py``."""

from __future__ import annotations

import torch

from art_ssl.data import load_task
from art_ssl.defences.trainer import TRADESTrainer
from art_ssl.estimators import encoder_classifier
from art_ssl.models import MLPHead, SmallCNN

PRETRAIN = {
    "method": "simclr",
    "nb_epochs": 3,
    "batch_size": 16,
    "seed": 0,
    "device_type": "cpu",
    "verbose": False,
    "amp": False,
}


def data():
    task = load_task("fashion_mnist_subset", size=16, n_train=48, n_test=10)
    return task.x_train, task.y_train


def trainer(**kwargs):
    torch.manual_seed(0)
    head = MLPHead(16, 10, hidden=(16,), dropout=0.3)  # dropout: the global RNG must be restored too
    clf = encoder_classifier(
        SmallCNN(1, (8, 16), stem_stride=2),
        10,
        head=head,
        freeze_encoder=False,
        input_shape=(1, 16, 16),
        device_type="cpu",
    )
    settings = {
        "nb_epochs": 3,
        "batch_size": 16,
        "pgd_steps": 2,
        "validation_pgd_steps": 0,
        "verbose": False,
        "amp": False,
        **kwargs,
    }
    return TRADESTrainer(clf, **settings)


def encoder():
    torch.manual_seed(0)
    return SmallCNN(1, (8, 16), stem_stride=2)
