"""
The names the audit grid, the CLI and the evaluation scripts share: which attacks and defences exist and how each
is built with the settings of our CPU budget. One place, so that a table and the audit mean the same by a name.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from art.defences.trainer.trainer import Trainer
from art.estimators.classification import PyTorchClassifier

# The names (one definition, importable without torch or ART for the CLI's help): universal perturbations crafted on
# the public encoder (the last two need the attacker's label-free surrogate classifier,
# art_ssl.evaluation.surrogate_classifier), white-box attacks on the downstream classifier, the backdoor, defences.
from art_ssl.audit_names import (  # noqa: F401  (re-exported)
    BACKDOOR_ATTACKS,
    DEFENCES,
    ENCODER_ATTACKS,
    UNIVERSAL_ATTACKS,
    WHITEBOX_ATTACKS,
)
from art_ssl.estimators.encoder import PyTorchEncoder

if TYPE_CHECKING:  # imported where used: the defences load only with the defence that needs them
    from art_ssl.defences.transformer import EncoderDistillation

# One line per defence for the report's glossary: what it does and its paper.
DEFENCE_GLOSSARY = {
    "none": "no defence: a head trained on the frozen public encoder (the reference every delta is taken against)",
    "finetune": "plain fine-tuning of encoder and head on clean data",
    "pgd_at": "PGD adversarial training of encoder and head (Madry et al., ICLR 2018)",
    "trades": "TRADES: clean CE + KL to PGD examples (Zhang et al., ICML 2019)",
    "mart": "MART: misclassification-aware adversarial training (Wang et al., ICLR 2020)",
    "genaf": "Gen-AF: adversarial fine-tuning with a graph regulariser, then a clean stage on robust layers "
    "(Zhou et al., IEEE S&P 2024)",
    "super_finetune": "super-fine-tuning: clean fine-tuning under a triangular learning rate, against backdoors "
    "(Sha et al., arXiv 2212.09067)",
    "zepad": "ZePAD: adversarially fine-tuned encoders + a clean branch, confidence-weighted fusion and a DAE "
    "detector (Lei, Yang, Zhang, ICLR 2026)",
    "distillation": "encoder distillation into a fresh student on clean data, against backdoors (Han et al., "
    "arXiv 2403.03846)",
}


# The defences whose trainer fine-tunes the encoder for the grid's epochs and takes ``lr_milestones`` (the grid's
# ``anneal_epochs``); ZePAD's inner trainers and super-fine-tuning have schedules of their own.
ANNEALED_DEFENCES = ("finetune", "pgd_at", "trades", "mart", "genaf")


@dataclass(frozen=True)
class TrainingBudget:
    """The smallest budget at which a defence trained on our benchmark (committed curves): ``steps`` optimiser steps
    of its downstream training (epochs x ceil(training images / batch size)), and for ZePAD and distillation the
    epochs of their other phases (``extra``: setting name of :class:`DefenceSettings` -> epochs).

    :param steps: Optimiser steps of the training that ``--epochs`` sets.
    :param extra: Epochs of other phases.
    :param source: Where the number comes from.
    """

    steps: int
    extra: tuple[tuple[str, int], ...] = ()
    source: str = ""


# Adversarial fine-tuning: 150 steps (digits: 30 epochs of 1,257 images at batch 256; Fashion-MNIST: 10 epochs of
# 4,000 = 160). At 48-50 steps (defences_64) the defences' order still changes with the budget (TRADES ahead of
# Gen-AF on digits, MART 23 points below the undefended model on simclr_r18 digits); at 150-160 every adversarial
# defence is within 3.1 points of the undefended BA, RA within 1.3 of BA, and the order matches the papers'.
# White-box RA still rises beyond (bench_curves_fmnist_20.md): this is the DAE threat model's budget.
_ADVERSARIAL = "evaluations/results/defences_10epochs_64.md, defences_digits_30epochs_64.md, bench_curves_*.md"
TRAINING_BUDGETS = {
    "finetune": TrainingBudget(48, source="evaluations/results/defences_64.md"),
    "pgd_at": TrainingBudget(150, source=_ADVERSARIAL),
    "trades": TrainingBudget(150, source=_ADVERSARIAL),
    "mart": TrainingBudget(150, source=_ADVERSARIAL),
    "super_finetune": TrainingBudget(48, source="evaluations/results/backdoor_64.md (ASR 1.00 -> 0.03)"),
    "genaf": TrainingBudget(150, source=_ADVERSARIAL),
    "zepad": TrainingBudget(48, extra=(("zepad_head_epochs", 10),), source="evaluations/results/zepad_64.md"),
    "distillation": TrainingBudget(
        0,
        extra=(("distill_epochs", 10), ("distill_teacher_epochs", 5), ("distill_warmup_epochs", 10)),
        source="evaluations/results/backdoor_64.md (ASR 1.00 -> 0.04)",
    ),
}


@dataclass(frozen=True)
class DefenceSettings:
    """Settings of the defences that need more than ``epochs``: ZePAD's other encoders and heads, distillation.

    :param zepad_auxiliary: ZePAD's second MPAE encoder (zoo name or file); ``None``: the first clean zoo encoder of
                            another SSL method than the victim's (:func:`zepad_partners`).
    :param zepad_bmp: ZePAD's BMP encoder, used where ``ZePADTrainer`` takes ``bmp_encoder``; ``None``: the next
                      clean zoo encoder other than the victim and the auxiliary.
    :param zepad_head_epochs: Epochs of each ZePAD branch head (official 20; trains at 10).
    :param zepad_threshold: Confidence gap above which ZePAD's detector flags an input (the paper's 0.1).
    :param distill_epochs: Distillation epochs (official 500; removes the backdoor at 10).
    :param distill_teacher_epochs: SimCLR epochs of the fine-tuned teacher.
    :param distill_warmup_epochs: SimCLR epochs of the warm-up student.
    :param distill_fraction: Fraction of the task's training images (unlabelled) the distillation uses.
    :param genaf_stage2_epochs: Gen-AF's stage-2 epochs (its clean fine-tuning of the robust layers; official 50).
                                At its constant rate stage 2 does not settle: on Fashion-MNIST 10 epochs instead of
                                2 add 1.45 points of BA and at most 0.35 of DAE RA and take 16 points of white-box RA
                                (``evaluations/results/checkpoint_daes_fmnist_30_anneal.md``).
    :param genaf_sensitivity_samples: Images of Gen-AF's layer-sensitivity estimate.
    :param genaf_sensitivity_epochs: Gradient-ascent epochs of Gen-AF's layer-sensitivity estimate.
    """

    zepad_auxiliary: str | None = None
    zepad_bmp: str | None = None
    zepad_head_epochs: int = 10
    zepad_threshold: float = 0.1
    distill_epochs: int = 10
    distill_teacher_epochs: int = 5
    distill_warmup_epochs: int = 10
    distill_fraction: float = 1.0
    genaf_stage2_epochs: int = 2
    genaf_sensitivity_samples: int = 1000
    genaf_sensitivity_epochs: int = 3

    def __post_init__(self) -> None:
        for name in (
            "zepad_head_epochs",
            "distill_epochs",
            "genaf_stage2_epochs",
            "genaf_sensitivity_samples",
            "genaf_sensitivity_epochs",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")
        for name in ("distill_teacher_epochs", "distill_warmup_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"`{name}` must be an int >= 0, got {value!r}.")
        if not 0 < self.distill_fraction <= 1:
            raise ValueError(f"`distill_fraction` must be in (0, 1], got {self.distill_fraction!r}.")
        if not 0 <= self.zepad_threshold <= 1:
            raise ValueError(f"`zepad_threshold` must be in [0, 1], got {self.zepad_threshold!r}.")
        for name in ("zepad_auxiliary", "zepad_bmp"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise TypeError(f"`{name}` must be an encoder name or file (str) or None, got {getattr(self, name)!r}.")


def training_warnings(
    defence: str, epochs: int, n_train: int, batch_size: int, settings: DefenceSettings | dict | None = None
) -> list[str]:
    """Why a run of ``defence`` trained below :data:`TRAINING_BUDGETS` (empty when it did not), in words for the
    report: the defence then under-rates itself."""
    budget = TRAINING_BUDGETS.get(defence)
    if budget is None:
        return []
    if isinstance(settings, dict):
        settings = DefenceSettings(**settings)
    settings = settings or DefenceSettings()
    out = []
    steps = int(epochs) * math.ceil(int(n_train) / int(batch_size))
    if steps < budget.steps:
        out.append(
            f"{defence} trained {steps} steps ({epochs} epochs of {n_train} images at batch {batch_size}); "
            f"it trains at >= {budget.steps} ({budget.source})"
        )
    for name, wanted in budget.extra:
        used = getattr(settings, name)
        if used < wanted:
            out.append(f"{defence}: {name} = {used}, it trains at >= {wanted} ({budget.source})")
    return out


def zepad_partners(victim: str, auxiliary: str | None = None, bmp: str | None = None) -> tuple[str, str]:
    """ZePAD's auxiliary MPAE encoder and BMP encoder for ``victim``: the given ones, else clean zoo encoders other
    than the victim (and the encoder a backdoored victim was made from), the auxiliary from another SSL method where
    the zoo has one (as the paper pairs them)."""
    from art_ssl.zoo import encoder_info, list_encoders

    try:
        info = encoder_info(victim)
    except (KeyError, ValueError):
        info = {}
    base = info.get("base_encoder")
    method = encoder_info(base).get("method") if base else info.get("method")
    clean = [n for n in list_encoders(backdoored=False) if n not in (victim, base)]
    if auxiliary is None:
        others = [n for n in clean if encoder_info(n).get("method") != method] or clean
        if not others:
            raise ValueError(f"No clean zoo encoder other than {victim!r} for ZePAD: set `zepad_auxiliary`.")
        auxiliary = others[0]
    if bmp is None:
        rest = [n for n in clean if n != auxiliary]
        bmp = rest[0] if rest else auxiliary
    return auxiliary, bmp


# Where a universal perturbation is crafted, beyond the papers (DESIGN §6): on the public encoder the victim
# fine-tunes (``ssp``), on another public encoder (``transfer:ssp``: the attacker does not know which encoder the
# victim started from) or on the defended victim's own encoder (``adaptive:ssp``: the attacker knows the defence).
DAE_SOURCES = ("standard", "transfer", "adaptive")


def dae_source(name: str) -> tuple[str, str]:
    """``(source, universal attack)`` of a universal attack name: ``"ssp"`` -> ``("standard", "ssp")``,
    ``"transfer:ssp"`` -> ``("transfer", "ssp")``, ``"adaptive:ssp"`` -> ``("adaptive", "ssp")``.

    :raises ValueError: a prefix on something other than a universal attack.
    """
    prefix, sep, base = name.partition(":")
    if sep and prefix in DAE_SOURCES[1:]:
        if base not in UNIVERSAL_ATTACKS:
            raise ValueError(
                f"Unknown attack {name!r}: '{prefix}:' takes a universal attack, one of {UNIVERSAL_ATTACKS}."
            )
        return prefix, base
    if name in UNIVERSAL_ATTACKS:
        return "standard", name
    raise ValueError(f"{name!r} is not a universal attack; choose from {UNIVERSAL_ATTACKS}.")


def attack_kind(name: str) -> str:
    """``"universal"`` (also ``transfer:<attack>``), ``"adaptive"`` (``adaptive:<attack>``: crafted on the defended
    model's encoder, so per trained model), ``"whitebox"`` or ``"backdoor"``; ``ValueError`` naming the choices
    otherwise."""
    if name in UNIVERSAL_ATTACKS:
        return "universal"
    if name.startswith(tuple(f"{s}:" for s in DAE_SOURCES[1:])):
        source, _ = dae_source(name)
        return "adaptive" if source == "adaptive" else "universal"
    if name in WHITEBOX_ATTACKS or name.startswith("torchattacks:"):
        return "whitebox"
    if name in BACKDOOR_ATTACKS:
        return "backdoor"
    raise ValueError(
        f"Unknown attack {name!r}; choose from {UNIVERSAL_ATTACKS + WHITEBOX_ATTACKS + BACKDOOR_ATTACKS}, "
        "'torchattacks:<Name>', or 'transfer:<universal attack>' / 'adaptive:<universal attack>'."
    )


@dataclass(frozen=True)
class AttackSettings:
    """Settings of the universal attacks that fit a 2-core CPU (official values in each attack's docstring).

    :param surrogate_n: The attacker's unlabelled images.
    :param sign_step: PAP / SSP sign step (official 2e-4).
    :param sign_epochs: PAP / SSP passes over the images (batch 16: 5,000 images give 312 steps, enough for a
                        10/255 budget at the official step; fewer images need more passes).
    :param gen_ngf: AdvEncoder generator width (official 128).
    :param gen_nz_batch: AdvEncoder noise vectors (official 256).
    :param gen_epochs: AdvEncoder epochs (official 20).
    :param uap_iter: ART UAP ``max_iter``.
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
    common: dict[str, Any] = {"eps": eps, "seed": s.seed, "verbose": False}
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
        return UniversalPerturbation(
            surrogate,
            attacker="fgsm",
            attacker_params={"eps": eps / 4},
            delta=0.2,
            max_iter=s.uap_iter,
            eps=eps,
            norm=np.inf,
            batch_size=256,
            verbose=False,
        )
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
    encoder_name: str | None = None,
    defence_settings: DefenceSettings | None = None,
    load_encoder: Callable[[str], PyTorchEncoder] | None = None,
    amp: bool | str = "auto",
    lr_milestones: tuple[int, ...] = (),
):
    """The ART ``Trainer`` of defence ``name`` (:data:`DEFENCES`) over ``classifier`` (an ``EncoderWithHead``);
    ``"none"`` trains the head on the frozen encoder. Use ``trainer.get_classifier()`` after ``fit``: ZePAD's is a
    new (fused) classifier, and ZePAD's trainer has ``get_detector()``.

    ``"zepad"`` and ``"distillation"`` also need ``encoder_name`` (the public encoder's name or file) and
    ``load_encoder`` (name -> ``PyTorchEncoder`` at the classifier's input shape); ``defence_settings`` their
    settings (:class:`DefenceSettings`). ``nb_epochs`` is ZePAD's adversarial fine-tuning and distillation's head
    training (at least 10). ``amp``: mixed precision (:mod:`art_ssl.core.amp`). ``lr_milestones``: the trainer's
    step decay, for the defences that fine-tune the encoder for ``nb_epochs`` (:data:`ANNEALED_DEFENCES`); a
    ``ValueError`` for another defence."""
    from art_ssl.defences.trainer import (
        FineTuningTrainer,
        GenAFTrainer,
        MARTTrainer,
        SuperFineTuningTrainer,
        TRADESTrainer,
    )

    common: dict[str, Any] = {  # mixed value types: Any, so that ** into each trainer type-checks
        "nb_epochs": nb_epochs,
        "batch_size": batch_size,
        "validation_pgd_steps": 0,
        "seed": seed,
        "verbose": verbose,
        "amp": amp,
    }
    pgd: dict[str, Any] = {"pgd_steps": pgd_steps}
    if lr_milestones:
        if name not in ANNEALED_DEFENCES:
            raise ValueError(f"Defence {name!r} takes no `lr_milestones` (only the encoder fine-tuning defences).")
        pgd["lr_milestones"] = tuple(lr_milestones)
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
        return GenAFTrainer(
            classifier,
            stage2_epochs=stage2_epochs,
            sensitivity_samples=sensitivity_samples,
            sensitivity_epochs=sensitivity_epochs,
            **pgd,
            **common,
        )
    if name == "super_finetune":
        return SuperFineTuningTrainer(classifier, **common)
    if name in ("zepad", "distillation"):
        if encoder_name is None or load_encoder is None:
            raise ValueError(f"Defence {name!r} needs `encoder_name` and `load_encoder`.")
        settings = defence_settings or DefenceSettings()
        if name == "distillation":
            return DistilledHeadTrainer(
                classifier,
                load_encoder(encoder_name),
                settings,
                head_epochs=max(nb_epochs, 10),
                batch_size=batch_size,
                seed=seed,
                verbose=verbose,
            )
        return _zepad_trainer(classifier, encoder_name, settings, load_encoder, pgd_steps, common)
    raise ValueError(f"Unknown defence {name!r}; choose from {DEFENCES}.")


def _zepad_trainer(classifier, encoder_name, settings, load_encoder, pgd_steps, common):
    from art_ssl.defences.trainer import ZePADTrainer

    auxiliary_name, bmp_name = zepad_partners(encoder_name, settings.zepad_auxiliary, settings.zepad_bmp)
    extra: dict[str, Any] = {}
    encoders = {"zepad_auxiliary": load_encoder(auxiliary_name)}
    if "bmp_encoder" in inspect.signature(ZePADTrainer).parameters:  # the BMP branch as its own clean encoder
        encoders["zepad_bmp"] = extra["bmp_encoder"] = load_encoder(bmp_name)
    for setting, encoder in encoders.items():
        if tuple(encoder.input_shape) != tuple(classifier.input_shape):
            raise ValueError(
                f"ZePAD's `{setting}` takes inputs {tuple(encoder.input_shape)}, the audited encoder "
                f"{tuple(classifier.input_shape)}: give one of the same input format."
            )
    # ZePAD's trainer runs its own inner trainers (no validation PGD); `amp` reaches every one of them.
    common = {k: v for k, v in common.items() if k != "validation_pgd_steps"}
    aft_epochs = common.pop("nb_epochs")
    return ZePADTrainer(
        classifier,
        auxiliary_encoder=encoders["zepad_auxiliary"],
        aft_epochs=aft_epochs,
        head_epochs=settings.zepad_head_epochs,
        pgd_steps=pgd_steps,
        detection_threshold=settings.zepad_threshold,
        **extra,
        **common,
    )


class DistilledHeadTrainer(Trainer):
    """
    The ``distillation`` defence of the audit as an ART ``Trainer``: :class:`~art_ssl.defences.transformer.
    EncoderDistillation` (the paper's best options: fine-tuned teacher, warm-up student, attention loss) distils
    ``public`` into a student on the training images without their labels, the student replaces
    ``classifier.model.encoder``, and the head is trained on the frozen student (as ``"none"`` on the public
    encoder). Trains ``classifier`` in place.

    :param classifier: ``PyTorchClassifier`` over an ``EncoderWithHead`` built on a copy of ``public``.
    :param public: The (possibly backdoored) public encoder; not modified.
    :param settings: Distillation epochs and data fraction (:class:`DefenceSettings`).
    :param head_epochs: Epochs of the head.
    :param batch_size: Head batch size.
    :param seed: Seed.
    :param verbose: Progress bars.
    """

    def __init__(
        self,
        classifier: PyTorchClassifier,
        public: PyTorchEncoder,
        settings: DefenceSettings,
        head_epochs: int = 10,
        batch_size: int = 256,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        super().__init__(classifier)
        self.public, self.settings = public, settings
        self.head_epochs, self.batch_size, self.seed, self.verbose = head_epochs, batch_size, seed, verbose
        self.distillation_: EncoderDistillation | None = None

    def fit(self, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> None:
        from art_ssl.defences.trainer import FineTuningTrainer
        from art_ssl.defences.transformer import EncoderDistillation

        s = self.settings
        self.distillation_ = EncoderDistillation(
            self.public,
            nb_epochs=s.distill_epochs,
            teacher_epochs=s.distill_teacher_epochs,
            warmup_epochs=s.distill_warmup_epochs,
            data_fraction=s.distill_fraction,
            seed=self.seed,
            verbose=self.verbose,
        )
        student = self.distillation_(x)
        model = self._classifier.model
        model.encoder = student.model.to(self._classifier.device)
        FineTuningTrainer(
            self._classifier,
            train_encoder=False,
            nb_epochs=self.head_epochs,
            batch_size=self.batch_size,
            validation_pgd_steps=0,
            seed=self.seed,
            verbose=self.verbose,
        ).fit(x, y)

    def get_classifier(self) -> PyTorchClassifier:
        return self._classifier


def flag_rate(detector: Any, x: np.ndarray) -> float:
    """Fraction of ``x`` that an ART ``EvasionDetector`` flags."""
    return float(np.mean(detector.detect(x)[1]))


def whitebox_adversarial(
    name: str, classifier: PyTorchClassifier, x: np.ndarray, y: np.ndarray, eps: float, seed: int = 0
) -> np.ndarray:
    """Adversarial examples of a white-box attack (:data:`WHITEBOX_ATTACKS` or ``torchattacks:<Name>``) on the
    downstream ``classifier``, L-inf budget ``eps``."""
    if name == "pgd":
        from art.attacks.evasion import ProjectedGradientDescent

        np.random.seed(seed)  # ART's random start draws from numpy
        return (
            ProjectedGradientDescent(classifier, eps=eps, eps_step=eps / 4, max_iter=20, batch_size=128, verbose=False)
            .generate(x, y=y)
            .astype(np.float32)
        )
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
