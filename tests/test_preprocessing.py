"""Non-identity preprocessing (the `normalised_classifier` fixture) through attacks, AutoAttack's model and trainers:
each must see the classifier's pixel-space function, the same as the unnormalised `trained_classifier`'s."""

from __future__ import annotations

import numpy as np
import torch

from art_ssl.attacks.evasion import TorchattacksAttack
from art_ssl.defences.trainer import FineTuningTrainer
from art_ssl.evaluation.autoattack import PreprocessedModel
from tests.conftest import accuracy_of


def test_fixture_computes_the_same_function_through_art(normalised_classifier, trained_classifier, test_batch):
    x, _ = test_batch
    np.testing.assert_allclose(normalised_classifier.predict(x), trained_classifier.predict(x), rtol=1e-4, atol=1e-4)
    # and the preprocessing matters: the model alone, on raw pixels, is another function
    with torch.no_grad():
        raw = normalised_classifier.model.eval()(torch.from_numpy(x)).numpy()
    assert np.mean(raw.argmax(1) != trained_classifier.predict(x).argmax(1)) > 0.1


def test_preprocessed_model_applies_the_preprocessing(normalised_classifier, trained_classifier, test_batch):
    x, _ = test_batch
    with torch.no_grad():
        logits = PreprocessedModel(normalised_classifier).eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(logits, trained_classifier.predict(x), rtol=1e-4, atol=1e-4)


def test_torchattacks_pgd_attacks_the_pixel_space_function(normalised_classifier, trained_classifier, test_batch):
    x, y = test_batch
    kwargs = {"eps": 0.1, "alpha": 0.02, "steps": 10, "random_start": False}
    accuracies = []
    for classifier in (normalised_classifier, trained_classifier):
        x_adv = TorchattacksAttack(classifier, "PGD", **kwargs).generate(x, y)
        assert np.abs(x_adv - x).max() <= 0.1 + 1e-6
        accuracies.append(accuracy_of(classifier, x_adv, y))
    assert accuracies[1] < accuracy_of(trained_classifier, x, y) - 0.3, accuracies
    assert abs(accuracies[0] - accuracies[1]) <= 0.03, accuracies  # same function, same attack, same result


def test_trainer_sees_the_pixel_space_function(normalised_classifier, trained_classifier, fmnist28, test_batch):
    x, y = test_batch
    trainer = FineTuningTrainer(
        normalised_classifier,
        adversarial=True,
        nb_epochs=1,
        batch_size=64,
        encoder_lr=1e-9,
        head_lr=1e-9,
        eps=0.1,
        step_size=0.03,
        pgd_steps=3,
        validation_pgd_steps=5,
        verbose=False,
    )
    trainer.fit(fmnist28.x_train[:64], fmnist28.y_train[:64], validation_data=(x, y))
    row = trainer.history_.iloc[-1]
    assert abs(row["val_ba"] - accuracy_of(trained_classifier, x, y)) <= 0.02, row
    assert row["val_ra"] < row["val_ba"] - 0.2, row
