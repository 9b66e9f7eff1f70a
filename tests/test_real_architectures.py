"""
Every universal attack, defence trainer, ZePAD, BadEncoder and distillation runs on the architectures users hold: a
full-width 3-channel ResNet-18 with the CIFAR stem at 32x32 and a ResNet-50 (torchvision layout). Tiny data and one
step each: this checks shapes, layer names and feature sizes, not accuracy.
"""

import copy

import numpy as np
import pytest

from art_ssl.attacks.poisoning import BadEncoder
from art_ssl.defences.trainer import ZePADTrainer
from art_ssl.defences.transformer import EncoderDistillation
from art_ssl.estimators import PyTorchEncoder, encoder_classifier
from art_ssl.evaluation.registry import (
    DEFENCES,
    UNIVERSAL_ATTACKS,
    AttackSettings,
    make_defence_trainer,
    make_universal_attack,
)
from art_ssl.evaluation.surrogate import surrogate_classifier
from art_ssl.models import build_encoder

ARCHS = [
    pytest.param("resnet18_cifar", 4, id="resnet18_cifar"),
    pytest.param("resnet50", 4, id="resnet50", marks=pytest.mark.resnet50),
]
SETTINGS = AttackSettings(surrogate_n=8, sign_epochs=1, gen_ngf=4, gen_nz_batch=2, gen_epochs=1, uap_iter=1)


def setup(arch, n):
    rng = np.random.default_rng(0)
    x = rng.random((n, 3, 32, 32), dtype=np.float32)
    y = np.arange(n) % 2
    model = build_encoder(arch)
    encoder = PyTorchEncoder(model.eval(), (3, 32, 32), device_type="cpu")
    return encoder, x, y


@pytest.mark.parametrize("arch, n", ARCHS)
def test_universal_attacks_run(arch, n):
    encoder, x, _ = setup(arch, n)
    surrogate = surrogate_classifier(encoder, x, nb_clusters=2)
    for name in UNIVERSAL_ATTACKS:
        attack = make_universal_attack(name, encoder, 10 / 255, surrogate=surrogate, settings=SETTINGS)
        if hasattr(attack, "batch_size"):
            attack.batch_size = n
        x_adv = attack.generate(x)
        assert x_adv.shape == x.shape and np.abs(x_adv - x).max() <= 10 / 255 + 1e-6, name


@pytest.mark.parametrize("arch, n", ARCHS)
def test_defence_trainers_run(arch, n):
    encoder, x, y = setup(arch, n)
    for name in DEFENCES:
        if name in ("zepad", "distillation"):  # they load other encoders by name: run directly in the next test
            continue
        classifier = encoder_classifier(
            copy.deepcopy(encoder.model), 2, freeze_encoder=name == "none", input_shape=(3, 32, 32), device_type="cpu"
        )
        trainer = make_defence_trainer(
            name,
            classifier,
            nb_epochs=1,
            batch_size=n,
            pgd_steps=1,
            sensitivity_samples=n,
            sensitivity_epochs=1,
            stage2_epochs=1,
        )
        trainer.fit(x, y)
        assert trainer.get_classifier().predict(x).shape == (n, 2), name


@pytest.mark.parametrize("arch, n", ARCHS)
def test_zepad_badencoder_and_distillation_run(arch, n):
    encoder, x, y = setup(arch, n)
    victim = encoder_classifier(copy.deepcopy(encoder.model), 2, input_shape=(3, 32, 32), device_type="cpu")
    auxiliary = build_encoder(arch).eval()
    zepad = ZePADTrainer(victim, auxiliary, aft_epochs=1, head_epochs=1, pgd_steps=1, batch_size=n, verbose=False)
    zepad.fit(x, y)
    assert zepad.get_classifier().predict(x).shape == (n, 2)
    backdoored = BadEncoder(encoder, nb_epochs=1, batch_size=n, verbose=False).poison_estimator(x)
    assert backdoored.predict(x).shape == (n, encoder.embedding_dim)
    student = EncoderDistillation(
        backdoored,
        nb_epochs=1,
        teacher_epochs=1,
        warmup_epochs=1,
        batch_size=n,
        layers=("layer1", "layer4"),
        verbose=False,
    )(x)
    assert student.predict(x).shape == (n, encoder.embedding_dim)
