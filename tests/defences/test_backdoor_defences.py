"""Super-fine-tuning and encoder distillation: the LR schedule by hand, a backdoor removed, clear errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from art_ssl.core.losses import attention_map, attention_transfer
from art_ssl.defences.trainer import SuperFineTuningTrainer, super_fine_tuning_lr
from art_ssl.defences.transformer import EncoderDistillation
from art_ssl.estimators import PyTorchEncoder
from art_ssl.metrics import attack_success_rate
from tests.conftest import BACKDOOR_TARGET as TARGET
from tests.conftest import linear_head_on

LAYERS = ("layer1", "layer2", "layer3")  # SmallCNN's stages


def test_super_fine_tuning_lr_by_hand():
    # base 0.001, peak 0.021: +0.002 per step up, -0.002 per step down, period 20
    lr = lambda step, epoch=1: super_fine_tuning_lr(step, epoch, 10, 0.001, 0.021, 0.011)  # noqa: E731
    expected = {0: 0.001, 1: 0.003, 5: 0.011, 10: 0.021, 13: 0.015, 19: 0.003, 20: 0.001, 30: 0.021}
    for step, value in expected.items():
        assert lr(step) == pytest.approx(value)
    # 40% of 10 epochs = epochs 1-4 peak at max_lr1, epochs 5-10 at max_lr2
    assert lr(10, epoch=4) == pytest.approx(0.021) and lr(10, epoch=5) == pytest.approx(0.011)
    assert lr(5, epoch=5) == pytest.approx(0.006)
    assert super_fine_tuning_lr(3, 1, 1, 0.0, 1.0, 1.0, steps_up=4, steps_down=2) == pytest.approx(0.75)
    assert super_fine_tuning_lr(5, 1, 1, 0.0, 1.0, 1.0, steps_up=4, steps_down=2) == pytest.approx(0.5)


class _Recording(SuperFineTuningTrainer):
    def _before_step(self, step, epoch, nb_epochs, optimizers):
        super()._before_step(step, epoch, nb_epochs, optimizers)
        self.seen = getattr(self, "seen", []) + [(step, epoch, optimizers["model"].param_groups[0]["lr"])]


def test_super_fine_tuning_sets_the_lr_before_every_step(trained_classifier, fmnist28):
    classifier = copy.deepcopy(trained_classifier)
    trainer = _Recording(
        classifier,
        base_lr=1e-4,
        max_lr1=1e-2,
        max_lr2=1e-3,
        nb_epochs=3,
        batch_size=64,
        switch_fraction=0.5,
        verbose=False,
    )
    trainer.fit(fmnist28.x_train[:640], fmnist28.y_train[:640])
    assert [s for s, _, _ in trainer.seen] == list(range(30))  # 10 steps an epoch, counted over the run
    for step, epoch, lr in trainer.seen:
        assert lr == pytest.approx(super_fine_tuning_lr(step, epoch, 3, 1e-4, 1e-2, 1e-3, 10, 10, 0.5))
    assert isinstance(next(iter(trainer._optimizers(0, 0, 0).values())), torch.optim.SGD)


def _ba_asr(classifier, attack, data) -> tuple[float, float]:
    x_bd, _ = attack.poison(data.x_test)
    ba = float(np.mean(classifier.predict(data.x_test).argmax(1) == data.y_test))
    return ba, attack_success_rate(classifier.predict(x_bd).argmax(1), TARGET, data.y_test, exclude_target_class=True)


def test_super_fine_tuning_removes_the_backdoor(backdoored, fmnist28):
    attack, _, head = backdoored
    ba_before, asr_before = _ba_asr(head, attack, fmnist28)
    assert asr_before > 0.7
    classifier = copy.deepcopy(head)
    SuperFineTuningTrainer(classifier, nb_epochs=2, batch_size=64, verbose=False).fit(
        fmnist28.x_train[:2000], fmnist28.y_train[:2000]
    )
    ba_after, asr_after = _ba_asr(classifier, attack, fmnist28)
    assert asr_after < 0.1  # measured 0.004
    assert ba_after > ba_before - 0.05  # measured 0.820 from 0.836


def test_distillation_removes_the_backdoor(backdoored, fmnist28):
    attack, encoder, head = backdoored
    defence = EncoderDistillation(
        encoder,
        nb_epochs=3,
        teacher_epochs=1,
        warmup_epochs=2,
        batch_size=128,
        data_fraction=0.4,
        layers=LAYERS,
        verbose=False,
    )
    student = defence(fmnist28.x_train)
    assert defence.is_fitted and isinstance(student, PyTorchEncoder) and len(defence.history_) == 3
    ba, asr = _ba_asr(linear_head_on(student, fmnist28), attack, fmnist28)
    assert asr < 0.2 < _ba_asr(head, attack, fmnist28)[1]  # measured 0.00 from 0.96
    assert ba > 0.4  # far above chance (0.1): the student learnt features (measured 0.69; a short run costs accuracy)
    # the teacher's weights were left alone
    torch.testing.assert_close(next(encoder.model.parameters()), next(head.model.encoder.parameters()))


def test_distillation_student_options_and_given_student(backdoored, fmnist28):
    _, encoder, _ = backdoored
    x = fmnist28.x_train[:256]
    poisoned_copy = EncoderDistillation(
        encoder,
        teacher="poisoned",
        student="poisoned",
        loss="cosine",
        nb_epochs=1,
        batch_size=128,
        layers=LAYERS,
        verbose=False,
    )(x)
    assert poisoned_copy.model is not encoder.model
    given = encoder.with_model(copy.deepcopy(encoder.model))
    out = EncoderDistillation(
        encoder, teacher="poisoned", loss="mse", nb_epochs=1, batch_size=128, layers=LAYERS, verbose=False
    )(x, transformed_classifier=given)
    assert out is given


def test_attention_map_by_hand():
    feats = torch.zeros(1, 2, 2, 2)
    feats[0, 0, 0, 0], feats[0, 1, 0, 0], feats[0, 1, 1, 1] = 3.0, -4.0, 5.0  # |F|^2 summed: 25 at (0,0) and (1,1)
    np.testing.assert_allclose(attention_map(feats).numpy(), [[2**-0.5, 0, 0, 2**-0.5]], atol=1e-6)
    assert float(attention_transfer(feats, feats * 7)) == pytest.approx(0.0, abs=1e-10)  # scale-free


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"loss": "afd"}, "loss"),
        ({"teacher": "clean"}, "teacher"),
        ({"student": "fresh"}, "student"),
        ({"layers": ("nope",)}, "layers"),
        ({"data_fraction": 0.0}, "data_fraction"),
        ({"beta": -1.0}, "beta"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
        ({"augmentation": "torchvision"}, "augmentation"),
        ({"amp": "yes"}, "amp"),
    ],
)
def test_distillation_rejects_bad_parameters(trained_encoder, kwargs, error):
    with pytest.raises(ValueError, match=error):
        EncoderDistillation(trained_encoder, **{"layers": LAYERS, **kwargs})
    with pytest.raises(TypeError, match="`augmentation`"):
        EncoderDistillation(trained_encoder, layers=LAYERS, augmentation=3)


def test_bad_trainer_and_transformer_inputs(trained_classifier, trained_encoder):
    with pytest.raises(TypeError, match="PyTorchEncoder"):
        EncoderDistillation(trained_classifier)
    with pytest.raises(ValueError, match="switch_fraction"):
        SuperFineTuningTrainer(copy.deepcopy(trained_classifier), switch_fraction=1.5)
    with pytest.raises(ValueError, match="max_lr1"):
        SuperFineTuningTrainer(copy.deepcopy(trained_classifier), max_lr1=0)
    with pytest.raises(TypeError, match="transformed_classifier"):
        EncoderDistillation(trained_encoder, layers=LAYERS, nb_epochs=1, verbose=False)(
            np.zeros((4, 1, 28, 28), np.float32), transformed_classifier=trained_classifier
        )
