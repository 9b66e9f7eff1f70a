"""
The names the audit grid, the CLI and the evaluation scripts share: which attacks and defences exist and how each
is built with the settings of our CPU budget. One place, so that a table and the audit mean the same by a name.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from art.estimators.classification import PyTorchClassifier

from art_ssl.estimators.encoder import PyTorchEncoder

# Universal perturbations crafted on the public encoder (downstream-agnostic); the last two need the attacker's
# label-free surrogate classifier (art_ssl.evaluation.surrogate_classifier).
UNIVERSAL_ATTACKS = ("advencoder", "pap_base", "pap_ugs", "pap_fuse", "ssp", "uapepgd", "art_uap")
ENCODER_ATTACKS = ("advencoder", "pap_base", "pap_ugs", "pap_fuse", "ssp")
# White-box attacks on the downstream classifier: ART's PGD, pyautoattack's run_standard_evaluation, ART's
# AutoAttack, and any torchattacks attack as ``torchattacks:<Name>`` (e.g. ``torchattacks:APGD``).
WHITEBOX_ATTACKS = ("pgd", "autoattack", "art_autoattack")
# Backdoor: the recorded trigger of a backdoored zoo encoder (art_ssl.zoo.backdoor_targets).
BACKDOOR_ATTACKS = ("badencoder",)
DEFENCES = ("none", "finetune", "pgd_at", "trades", "mart", "genaf", "super_finetune")


def attack_kind(name: str) -> str:
    """``"universal"``, ``"whitebox"`` or ``"backdoor"``; ``ValueError`` naming the choices otherwise."""
    if name in UNIVERSAL_ATTACKS:
        return "universal"
    if name in WHITEBOX_ATTACKS or name.startswith("torchattacks:"):
        return "whitebox"
    if name in BACKDOOR_ATTACKS:
        return "backdoor"
    raise ValueError(
        f"Unknown attack {name!r}; choose from {UNIVERSAL_ATTACKS + WHITEBOX_ATTACKS + BACKDOOR_ATTACKS} or "
        "'torchattacks:<Name>'."
    )


@dataclass(frozen=True)
class AttackSettings:
    """Settings of the universal attacks that fit a 2-core CPU (official values in each attack's docstring).

    :param surrogate_n: The attacker's unlabelled images. :param sign_step: PAP / SSP sign step (official 2e-4).
    :param sign_epochs: PAP / SSP passes over the images (batch 16: 5,000 images give 312 steps, enough for a
                        10/255 budget at the official step; fewer images need more passes).
    :param gen_ngf: AdvEncoder generator width (official 128). :param gen_nz_batch: AdvEncoder noise vectors
    (official 256). :param gen_epochs: AdvEncoder epochs (official 20). :param uap_iter: ART UAP ``max_iter``.
    :param seed: Seed of every attack.
    """

    surrogate_n: int = 5000
    sign_step: float = 2e-4
    sign_epochs: int = 1
    gen_ngf: int = 32
    gen_nz_batch: int = 32
    gen_epochs: int = 10
    uap_iter: int = 1
    seed: int = 0


def make_universal_attack(
    name: str,
    encoder: PyTorchEncoder,
    eps: float,
    surrogate: PyTorchClassifier | None = None,
    settings: AttackSettings | None = None,
):
    """One attack of :data:`UNIVERSAL_ATTACKS` at budget ``eps`` (pixel units); ``surrogate`` is needed by
    ``uapepgd`` and ``art_uap``."""
    from art.attacks.evasion import UniversalPerturbation

    from art_ssl.attacks.evasion import PAP, SSP, UAPEPGD, AdvEncoder

    s = settings or AttackSettings()
    common = {"eps": eps, "seed": s.seed, "verbose": False}
    if name in ("uapepgd", "art_uap") and surrogate is None:
        raise ValueError(f"Attack {name!r} runs on a surrogate classifier: pass `surrogate`.")
    if name == "advencoder":
        return AdvEncoder(encoder, ngf=s.gen_ngf, nz_batch=s.gen_nz_batch, nb_epochs=s.gen_epochs, **common)
    if name.startswith("pap_") and name in UNIVERSAL_ATTACKS:
        return PAP(encoder, variant=name[4:], step_size=s.sign_step, nb_epochs=s.sign_epochs, **common)
    if name == "ssp":
        return SSP(encoder, step_size=s.sign_step, nb_epochs=s.sign_epochs, **common)
    if name == "uapepgd":
        return UAPEPGD(surrogate, **common)
    if name == "art_uap":
        return UniversalPerturbation(surrogate, attacker="fgsm", attacker_params={"eps": eps / 4}, delta=0.2,
                                     max_iter=s.uap_iter, eps=eps, norm=np.inf, batch_size=256,
                                     verbose=False)  # fmt: skip
    raise ValueError(f"Unknown universal attack {name!r}; choose from {UNIVERSAL_ATTACKS}.")


def make_defence_trainer(
    name: str,
    classifier: PyTorchClassifier,
    nb_epochs: int,
    batch_size: int = 256,
    pgd_steps: int = 5,
    seed: int = 0,
    verbose: bool = False,
    sensitivity_samples: int = 1000,
    sensitivity_epochs: int = 3,
    stage2_epochs: int = 2,
    amp: bool | str = "auto",
):
    """The ART ``Trainer`` of defence ``name`` (:data:`DEFENCES`) over ``classifier`` (an ``EncoderWithHead``);
    ``"none"`` trains the head on the frozen encoder. ``amp``: mixed precision (:mod:`art_ssl.core.amp`)."""
    from art_ssl.defences.trainer import (
        FineTuningTrainer,
        GenAFTrainer,
        MARTTrainer,
        SuperFineTuningTrainer,
        TRADESTrainer,
    )

    common = {"nb_epochs": nb_epochs, "batch_size": batch_size, "validation_pgd_steps": 0, "seed": seed,
              "verbose": verbose, "amp": amp}  # fmt: skip
    pgd = {"pgd_steps": pgd_steps}
    if name == "none":
        return FineTuningTrainer(classifier, train_encoder=False, **pgd, **common)
    if name == "finetune":
        return FineTuningTrainer(classifier, **pgd, **common)
    if name == "pgd_at":
        return FineTuningTrainer(classifier, adversarial=True, **pgd, **common)
    if name == "trades":
        return TRADESTrainer(classifier, **pgd, **common)
    if name == "mart":
        return MARTTrainer(classifier, **pgd, **common)
    if name == "genaf":
        return GenAFTrainer(classifier, stage2_epochs=stage2_epochs, sensitivity_samples=sensitivity_samples,
                            sensitivity_epochs=sensitivity_epochs, **pgd, **common)  # fmt: skip
    if name == "super_finetune":
        return SuperFineTuningTrainer(classifier, **common)
    raise ValueError(f"Unknown defence {name!r}; choose from {DEFENCES}.")


def whitebox_adversarial(
    name: str, classifier: PyTorchClassifier, x: np.ndarray, y: np.ndarray, eps: float, seed: int = 0
) -> np.ndarray:
    """Adversarial examples of a white-box attack (:data:`WHITEBOX_ATTACKS` or ``torchattacks:<Name>``) on the
    downstream ``classifier``, L-inf budget ``eps``."""
    if name == "pgd":
        from art.attacks.evasion import ProjectedGradientDescent

        np.random.seed(seed)  # ART's random start draws from numpy
        return ProjectedGradientDescent(classifier, eps=eps, eps_step=eps / 4, max_iter=20, batch_size=128,
                                        verbose=False).generate(x, y=y).astype(np.float32)  # fmt: skip
    if name == "autoattack":
        from art_ssl.evaluation.autoattack import autoattack_accuracy

        return autoattack_accuracy(classifier, x, y, eps=eps, seed=seed)[1].astype(np.float32)
    if name == "art_autoattack":
        from art.attacks.evasion import AutoAttack

        np.random.seed(seed)
        return AutoAttack(classifier, eps=eps, eps_step=eps / 4, batch_size=128).generate(x, y=y).astype(np.float32)
    if name.startswith("torchattacks:"):
        from art_ssl.attacks.evasion import TorchattacksAttack

        return TorchattacksAttack(classifier, name.split(":", 1)[1], eps=eps, seed=seed).generate(x, y)
    raise ValueError(f"Unknown white-box attack {name!r}; choose from {WHITEBOX_ATTACKS} or 'torchattacks:<Name>'.")
