"""ZePAD: fusion rules and the detector against hand-computed values, a short real run, persistent reuse, bad input."""

import copy
import math

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier

from art_ssl.attacks.evasion import SSP
from art_ssl.core.fusion import fuse_logits, fusion_weights
from art_ssl.data import load_task
from art_ssl.defences.detector import ZePADDetector
from art_ssl.defences.trainer import ZePADModel, ZePADTrainer
from art_ssl.estimators import encoder_classifier
from art_ssl.evaluation import linear_probe
from art_ssl.metrics import detection_auroc
from art_ssl.zoo import list_encoders, load_encoder


def test_fusion_rules_by_hand():
    z = torch.tensor([[[2.0, 0.0], [0.0, 0.0]]])  # one sample, branch 0 confident, branch 1 undecided
    m0 = math.exp(2) / (math.exp(2) + 1)
    c0, c1 = m0 * math.exp(3 * (m0 - 0.5)), 0.5 * math.exp(0.0)
    w = fusion_weights(z, "federal", k=3.0)[0]
    assert math.isclose(float(w[0]), c0 / (c0 + c1), rel_tol=1e-5)
    torch.testing.assert_close(fuse_logits(z, "federal"), torch.tensor([[2.0 * c0 / (c0 + c1), 0.0]]))
    torch.testing.assert_close(fuse_logits(z, "equal"), torch.tensor([[1.0, 0.0]]))
    h0 = -(m0 * math.log(m0) + (1 - m0) * math.log(1 - m0))
    h1 = math.log(2)
    assert math.isclose(float(fusion_weights(z, "entropy")[0, 0]), h0 / (h0 + h1), rel_tol=1e-5)
    with pytest.raises(ValueError, match="`fusion`"):
        fusion_weights(z, "vote")


class Constant(torch.nn.Module):
    """A branch whose logits are ``logits`` whatever the input, scaled by the input's mean (so tests can vary it)."""

    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", torch.tensor(logits))

    def forward(self, x):
        return self.logits.expand(len(x), -1) * x.flatten(1).mean(1, keepdim=True) * 2


def fused_classifier(mpae_logits, bmp_logits):
    model = ZePADModel([Constant(v) for v in mpae_logits], Constant(bmp_logits))
    return PyTorchClassifier(model, torch.nn.CrossEntropyLoss(), (1, 2, 2), 3, clip_values=(0, 1))


def test_detector_flags_confident_mpae_over_unsure_bmp():
    clf = fused_classifier([[6.0, 0, 0], [0, 6.0, 0]], [0.2, 0, 0])
    x = np.full((2, 1, 2, 2), 0.5, np.float32)  # scale 1: logits as written
    report, flagged = ZePADDetector(clf, threshold=0.1).detect(x)
    m_mpae = math.exp(6) / (math.exp(6) + 2)
    m_bmp = math.exp(0.2) / (math.exp(0.2) + 2)
    np.testing.assert_allclose(report["gap"], m_mpae - m_bmp, rtol=1e-5)
    assert flagged.all()
    calm = fused_classifier([[0.2, 0, 0]], [0.2, 0, 0])
    assert not ZePADDetector(calm).detect(x)[1].any()  # equal confidence: gap 0
    assert not ZePADDetector(clf, threshold=0.9).detect(x)[1].any()
    negative = fused_classifier([[0.2, 0, 0]], [6.0, 0, 0])  # BMP more confident: gap < 0
    assert not ZePADDetector(negative).detect(x)[1].any()
    assert ZePADDetector(negative, score="abs_gap").detect(x)[1].all()


def test_detector_rejects_bad_input():
    clf = fused_classifier([[1.0, 0, 0]], [1.0, 0, 0])
    with pytest.raises(ValueError, match="`threshold`"):
        ZePADDetector(clf, threshold=-0.1)
    with pytest.raises(ValueError, match="`score`"):
        ZePADDetector(clf, score="entropy")
    with pytest.raises(TypeError, match="`classifier`"):
        ZePADDetector("model")
    no_bmp = PyTorchClassifier(ZePADModel([Constant([1.0, 0, 0])], None), torch.nn.CrossEntropyLoss(), (1, 2, 2), 3)
    with pytest.raises(ValueError, match="BMP"):
        ZePADDetector(no_bmp)


@pytest.fixture(scope="module")
def zoo_pair():
    names = list_encoders()
    victim = "simclr_r18" if "simclr_r18" in names else names[0]
    auxiliary = next(n for n in names if n != victim)
    return load_encoder(victim, "cpu"), load_encoder(auxiliary, "cpu")


def test_short_real_run_keeps_benign_accuracy_raises_robust_accuracy_and_detects(zoo_pair):
    public, auxiliary = zoo_pair
    task = load_task("fashion_mnist_subset", size=64)
    x_train, y_train, x_test, y_test = task.x_train[:1000], task.y_train[:1000], task.x_test[:400], task.y_test[:400]
    dae = SSP(public, eps=10 / 255, step_size=1e-3, seed=0, verbose=False)
    dae.generate(task.x_train[3000:4000])
    x_test_adv = dae.perturb(x_test)
    probe = linear_probe(public, x_train, y_train, x_test, y_test)
    undefended = encoder_classifier(public, 10, head=probe.head, device_type="cpu")
    victim = encoder_classifier(public, 10, head=copy.deepcopy(probe.head), device_type="cpu")
    # The detector threshold below was calibrated on the pre-issue-16 build (the clean victim as BMP branch); the
    # official build (`bmp_encoder="auto"`) is covered by tests/defences/test_defence_options.py.
    trainer = ZePADTrainer(
        victim,
        auxiliary,
        aft_epochs=2,
        head_epochs=20,
        pgd_steps=3,
        step_size=4 / 255,
        eps=10 / 255,
        batch_size=64,
        verbose=False,
        bmp_encoder="victim",
    )
    trainer.fit(x_train, y_train)
    fused = trainer.get_classifier()

    def acc(clf, x):
        return float(np.mean(clf.predict(x, batch_size=256).argmax(1) == y_test))

    ba0, ra0, ba, ra = acc(undefended, x_test), acc(undefended, x_test_adv), acc(fused, x_test), acc(fused, x_test_adv)
    assert ba >= ba0 - 0.05 and ra > ra0 + 0.05, (ba0, ra0, ba, ra)
    # After so short a fine-tuning every branch loses confidence under the DAE: the size of the gap detects it.
    detector = trainer.get_detector(score="abs_gap")
    scores = np.concatenate([detector.detect(x)[0]["score"] for x in (x_test, x_test_adv)])
    labels = np.r_[np.zeros(len(x_test)), np.ones(len(x_test))]
    assert detection_auroc(scores, labels) > 0.65
    # the public encoder is untouched
    np.testing.assert_allclose(
        public.predict(x_test[:4]),
        undefended.model.encoder(torch.from_numpy(x_test[:4])).detach().numpy(),
        rtol=1e-4,
        atol=1e-5,
    )
    # persistent robustness: the fine-tuned MPAE encoders serve another task with new heads only
    digits = load_task("digits", size=64)
    victim_digits = encoder_classifier(public, 10, device_type="cpu")
    reuse = ZePADTrainer(
        victim_digits, mpae_encoders=trainer.mpae_encoders_, head_epochs=2, batch_size=64, verbose=False
    )
    reuse.fit(digits.x_train, digits.y_train)
    assert not any(k.startswith("aft") for k in reuse.histories_)
    assert float(np.mean(reuse.get_classifier().predict(digits.x_test).argmax(1) == digits.y_test)) > 0.7


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"fusion": "vote"}, ValueError, "`fusion`"),
        ({"aft_epochs": 0}, ValueError, "`aft_epochs`"),
        ({"head_dropout": 1.0}, ValueError, "`head_dropout`"),
        ({"amp": "yes"}, ValueError, "`amp`"),
        ({"auxiliary_encoder": None}, TypeError, "`auxiliary_encoder`"),
        ({"mpae_encoders": [torch.nn.Identity()]}, ValueError, "`mpae_encoders`"),
        ({"mpae_encoders": ["enc", "enc"]}, TypeError, "`mpae_encoders`"),
    ],
)
def test_bad_arguments(trained_classifier, kwargs, error, match):
    args = {"auxiliary_encoder": torch.nn.Identity(), **kwargs}
    with pytest.raises(error, match=match):
        ZePADTrainer(trained_classifier, **args)
