"""Each universal attack must lower a real linear probe's accuracy on real Fashion-MNIST at the protocol's
64x64 and eps 10/255, be repeatable with a seed, and reject bad arguments."""

import numpy as np
import pytest
from art.attacks.evasion import UniversalPerturbation
from art.exceptions import EstimatorError

from art_ssl.attacks.evasion import PAP, SSP, UAPEPGD, AdvEncoder
from art_ssl.data import load_task
from art_ssl.estimators import encoder_classifier
from art_ssl.evaluation import linear_probe
from art_ssl.zoo import list_encoders, load_encoder

EPS = 10 / 255


@pytest.fixture(scope="module")
def setting():
    """The attacker's unlabelled surrogate images, and a victim's downstream probe on other images."""
    task = load_task("fashion_mnist_subset", size=64)
    encoder = load_encoder("simclr_r18" if "simclr_r18" in list_encoders() else list_encoders()[0], "cpu")
    probe = linear_probe(encoder, task.x_train[:1500], task.y_train[:1500], task.x_test, task.y_test)
    victim = encoder_classifier(encoder, 10, head=probe.head, device_type="cpu")
    surrogate = task.x_train[1500:2500]
    return encoder, victim, surrogate, task.x_test[:500], task.y_test[:500]


def accuracy(classifier, x, y):
    return float(np.mean(classifier.predict(x, batch_size=256).argmax(1) == y))


FAST = {"verbose": False, "seed": 0}
ATTACKS = {
    "pap_base": lambda enc: PAP(enc, eps=EPS, step_size=1e-3, **FAST),
    "pap_fuse": lambda enc: PAP(enc, variant="fuse", eps=EPS, step_size=1e-3, **FAST),
    "pap_ugs": lambda enc: PAP(enc, variant="ugs", eps=EPS, step_size=1e-3, **FAST),
    "ssp": lambda enc: SSP(enc, eps=EPS, step_size=1e-3, **FAST),
    "advencoder": lambda enc: AdvEncoder(enc, eps=EPS, ngf=8, nz_batch=8, nb_epochs=2, batch_size=100, **FAST),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_lowers_downstream_accuracy_within_budget(setting, name):
    encoder, victim, surrogate, x_test, y_test = setting
    attack = ATTACKS[name](encoder)
    x_adv = attack.generate(surrogate)
    assert attack.noise.shape == (1, 1, 64, 64) and np.abs(attack.noise).max() <= EPS + 1e-6
    assert np.abs(x_adv - surrogate).max() <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert 0 < attack.fooling_rate <= 1
    clean, robust = accuracy(victim, x_test, y_test), accuracy(victim, attack.perturb(x_test), y_test)
    assert robust < clean - 0.1, f"{name}: {clean:.3f} -> {robust:.3f}"


def test_fooling_rate_is_computed_on_first_access_and_matches_its_definition(setting):
    encoder, victim, surrogate, x_test, y_test = setting
    attack = SSP(encoder, eps=EPS, step_size=1e-3, max_iter=5, **FAST)
    assert attack.fooling_rate is None
    attack.generate(surrogate[:300])
    assert attack._fooling_rate is None  # generate does not pay for the diagnostic
    expected = attack.embedding_fooling_rate(surrogate[:300], attack.perturb(surrogate[:300]))
    assert attack.fooling_rate == expected and attack._fooling_inputs is None
    attack.generate(surrogate[300:400])  # a new perturbation forgets the old rate
    assert attack._fooling_rate is None and attack.fooling_rate is not None


def test_advencoder_patch_changes_only_the_patch(setting):
    encoder, victim, surrogate, x_test, y_test = setting
    attack = AdvEncoder(encoder, variant="patch", ngf=8, nz_batch=8, nb_epochs=1, batch_size=100, **FAST)
    attack.generate(surrogate[:200])
    x_adv = attack.perturb(x_test)
    changed = np.any(x_adv != x_test, axis=(0, 1))
    assert changed.sum() <= 11 * 11 and changed[-20:, -20:].any() and not changed[:32].any()


def test_uapepgd_on_a_surrogate_head_fools_the_victim(setting):
    encoder, victim, surrogate, x_test, y_test = setting
    attack = UAPEPGD(victim, eps=EPS, batch_size=50, **FAST)
    attack.generate(surrogate)
    assert np.abs(attack.noise).max() <= EPS + 1e-6
    assert attack.fooling_rate > 0.1
    assert accuracy(victim, attack.perturb(x_test), y_test) < accuracy(victim, x_test, y_test) - 0.1


def test_arts_universal_perturbation_composes_on_a_surrogate_head(setting):
    encoder, victim, surrogate, x_test, y_test = setting
    uap = UniversalPerturbation(
        victim,
        attacker="fgsm",
        attacker_params={"eps": 0.01},
        delta=0.2,
        max_iter=1,
        eps=EPS,
        norm=np.inf,
        batch_size=64,
        verbose=False,
    )
    uap.generate(surrogate[:200])
    assert np.abs(uap.noise).max() <= EPS + 1e-6
    assert accuracy(victim, np.clip(x_test + uap.noise, 0, 1), y_test) < accuracy(victim, x_test, y_test)


def test_same_seed_same_noise_other_seed_other_noise(setting):
    encoder, _, surrogate, _, _ = setting
    make = lambda seed: PAP(encoder, eps=EPS, step_size=1e-3, max_iter=20, verbose=False, seed=seed)
    first, second, third = make(3), make(3), make(4)
    for attack in (first, second, third):
        attack.generate(surrogate[:320])
    np.testing.assert_array_equal(first.noise, second.noise)
    assert not np.array_equal(first.noise, third.noise)
    gens = [AdvEncoder(encoder, ngf=4, nz_batch=4, max_iter=3, batch_size=64, verbose=False, seed=1) for _ in range(2)]
    for attack in gens:
        attack.generate(surrogate[:128])
    np.testing.assert_array_equal(gens[0].noise, gens[1].noise)


def test_unclipped_mode_matches_the_papers(setting):
    encoder, _, surrogate, x_test, _ = setting
    attack = SSP(encoder, eps=EPS, max_iter=5, clip=False, verbose=False)
    attack.generate(surrogate[:80])
    x_adv = attack.perturb(x_test)
    np.testing.assert_allclose(x_adv, x_test + attack.noise, atol=1e-6)
    assert x_adv.min() < 0  # black background pixels pushed below 0, as in the official code


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda enc: PAP(enc, eps=0.0), "`eps`"),
        (lambda enc: PAP(enc, eps=-0.1), "`eps`"),
        (lambda enc: PAP(enc, variant="mega"), "`variant`"),
        (lambda enc: PAP(enc, layer="layer9"), "`layer`"),
        (lambda enc: PAP(enc, variant="fuse", fuse_layer="stem"), "`fuse_layer`"),
        (lambda enc: SSP(enc, layer="nope"), "`layer`"),
        (lambda enc: SSP(enc, norm=2), "`norm`"),
        (lambda enc: SSP(enc, batch_size=0), "`batch_size`"),
        (lambda enc: AdvEncoder(enc, variant="sticker"), "`variant`"),
        (lambda enc: AdvEncoder(enc, temperature=0), "`temperature`"),
        (lambda enc: AdvEncoder(enc, patch_fraction=1.5), "`patch_fraction`"),
        (lambda enc: PAP(enc, seed=-1), "`seed`"),
        (lambda enc: PAP(enc, max_iter=0), "`max_iter`"),
    ],
)
def test_bad_parameters_raise(setting, make, match):
    with pytest.raises(ValueError, match=match):
        make(setting[0])


def test_wrong_estimator_types_and_labels_raise(setting):
    encoder, victim, surrogate, _, y_test = setting
    with pytest.raises(EstimatorError):
        PAP(victim)  # a classifier is not an encoder
    with pytest.raises(EstimatorError):
        UAPEPGD(encoder)  # an encoder is not a classifier
    with pytest.raises(ValueError, match="`y` must be None"):
        SSP(encoder, max_iter=1, verbose=False).generate(surrogate[:16], y=y_test[:16])
    with pytest.raises(ValueError, match="generate"):
        SSP(encoder).perturb(surrogate[:2])
    with pytest.raises(ValueError, match="shape"):
        SSP(encoder, max_iter=1, verbose=False).generate(surrogate[:4, :, :32])


def test_hooks_do_not_leak_and_encoder_mode_is_restored(setting):
    encoder, _, surrogate, _, _ = setting
    encoder.model.train()
    PAP(encoder, variant="fuse", max_iter=2, verbose=False).generate(surrogate[:32])
    assert encoder.model.training
    assert all(not m._forward_hooks for m in encoder.model.modules())
    assert all(p.grad is None for p in encoder.model.parameters())
    encoder.model.eval()
