"""
The benchmark's named settings: the tables of attacks and defences as audit grids (:data:`GRID_PRESETS`, run by
``run_preset.py``), their budgets per profile, and the command-line options the remaining study scripts share
(ZePAD's and the backdoor's ablations, whose rows are not grid cells). The work itself (attack line-up,
perturbation cache, victim building, defence dispatch, encoder loading, results store) lives in
:mod:`art_ssl.evaluation`; this file only names settings.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from art_ssl.estimators import PyTorchEncoder
from art_ssl.evaluation import GridConfig, universal_perturbations
from art_ssl.evaluation.registry import (
    ENCODER_ATTACKS,
    UNIVERSAL_ATTACKS,
    AttackSettings,
    DefenceSettings,
    make_defence_trainer,
)
from art_ssl.zoo import list_encoders

__all__ = ["CPU_ATTACK_SETTINGS", "ENCODER_ATTACKS", "GRID_PRESETS", "PROFILES", "TASK_EPOCHS", "preset_grids"]

# The attack budget of the committed tables (fits 2 CPU cores; official values in evaluations/README.md).
CPU_ATTACK_SETTINGS = AttackSettings(
    surrogate_n=5000, sign_step=2e-4, gen_ngf=32, gen_nz_batch=32, gen_epochs=10, uap_iter=1, seed=0
)
# Digits has 1,257 training images (5 batches of 256): the epochs of a 4,000-image task would give it a third of
# the optimisation steps.
TASK_EPOCHS = ("digits=10",)


def add_attack_arguments(parser: argparse.ArgumentParser) -> None:
    """The attack settings every script exposes (defaults: :data:`CPU_ATTACK_SETTINGS`), ``--seed`` and
    ``--device``."""
    s = CPU_ATTACK_SETTINGS
    parser.add_argument("--surrogate-n", type=int, default=s.surrogate_n, help="attacker's unlabelled images")
    parser.add_argument("--sign-step", type=float, default=s.sign_step, help="PAP/SSP sign step (official 2e-4)")
    parser.add_argument("--gen-ngf", type=int, default=s.gen_ngf, help="AdvEncoder generator width (official 128)")
    parser.add_argument("--gen-nz-batch", type=int, default=s.gen_nz_batch, help="AdvEncoder noise vectors (256)")
    parser.add_argument("--gen-epochs", type=int, default=s.gen_epochs, help="AdvEncoder epochs (official 20)")
    parser.add_argument("--uap-iter", type=int, default=s.uap_iter, help="ART UniversalPerturbation max_iter")
    parser.add_argument("--seed", type=int, default=s.seed)
    add_device_argument(parser)


def attack_settings(args: argparse.Namespace) -> AttackSettings:
    """The :class:`~art_ssl.evaluation.registry.AttackSettings` of the parsed options."""
    return AttackSettings(
        surrogate_n=args.surrogate_n,
        sign_step=args.sign_step,
        gen_ngf=args.gen_ngf,
        gen_nz_batch=args.gen_nz_batch,
        gen_epochs=args.gen_epochs,
        uap_iter=args.uap_iter,
        seed=args.seed,
    )


def cached_daes(
    label: str, public: PyTorchEncoder, attacks, eps_255, x_surrogate: np.ndarray, args: argparse.Namespace
) -> dict[tuple[str, float], np.ndarray]:
    """The threat model's DAEs, each crafted once on the *public* encoder with the options' settings and kept in the
    perturbation cache ``--cache`` (:func:`art_ssl.evaluation.universal_perturbations`): ``{(attack, eps_255):
    noise}``."""
    learnt = universal_perturbations(
        public, attacks, eps_255, x_surrogate, attack_settings(args), seed=args.seed, cache=args.cache, label=label
    )
    return {key: value["noise"] for key, value in learnt.items()}


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device cpu|gpu`` (ART's ``device_type``; "gpu" falls back to the CPU when CUDA is absent, as in ART)."""
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"], help="device_type of every estimator")


def add_cache_argument(parser: argparse.ArgumentParser) -> None:
    """``--cache``: the perturbation cache (:mod:`art_ssl.evaluation.cache`, the audit's)."""
    parser.add_argument("--cache", default="evaluations/cache", help="folder of the cached DAEs (.npz with their key)")


def add_task_epochs_argument(parser: argparse.ArgumentParser) -> None:
    """``--task-epochs digits=10``: per-task epochs (default :data:`TASK_EPOCHS`)."""
    parser.add_argument(
        "--task-epochs",
        nargs="*",
        default=list(TASK_EPOCHS),
        metavar="TASK=EPOCHS",
        help="epochs for these tasks instead of the default (default: digits=10)",
    )


def task_epochs(args: argparse.Namespace, task: str, default: int) -> int:
    """The epochs of ``task``: its ``--task-epochs`` entry, else ``default``."""
    for item in args.task_epochs:
        name, _, value = item.partition("=")
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"--task-epochs takes TASK=EPOCHS with EPOCHS >= 1, got {item!r}")
        if name == task:
            return int(value)
    return default


def defence_trainer(name: str, classifier, args: argparse.Namespace, epochs: int):
    """The trainer of defence ``name`` with the scripts' shared options (``--batch-size``, ``--pgd-steps``,
    ``--seed``, ``--verbose``, Gen-AF's ``--genaf-stage2-epochs``, ``--sensitivity-samples``,
    ``--sensitivity-epochs``)."""
    return make_defence_trainer(
        name,
        classifier,
        epochs,
        batch_size=args.batch_size,
        pgd_steps=args.pgd_steps,
        seed=args.seed,
        verbose=args.verbose,
        stage2_epochs=args.genaf_stage2_epochs,
        sensitivity_samples=args.sensitivity_samples,
        sensitivity_epochs=args.sensitivity_epochs,
    )


# ------------------------------------------------------------------------------------------------ grid presets
# The benchmark tables as audit grids (art_ssl.evaluation.run_grid: one protocol for the tables and `art-ssl audit`).
# A preset is one or more GridConfig keyword sets written into one results file (a second part adds cells to the
# same downstream models' settings, e.g. AutoAttack on a subset; its models are trained again, same seed, same bits).
# Profiles change the budgets (PROFILES); run them with evaluations/run_preset.py.
DEFENCES_BENCH = ("none", "finetune", "pgd_at", "trades", "mart", "genaf")
_DAES = ("advencoder", "pap_ugs", "ssp")
_DEFENCE_GRID = {
    "encoders": ("simclr_r18", "barlow_twins_r18"),
    "tasks": ("fashion-mnist", "digits"),
    "defences": DEFENCES_BENCH,
    "attacks": _DAES,
    "eps": (10.0,),
    "n_train": 4000,
    "n_test": 2000,
    "epochs": 3,
    "task_epochs": TASK_EPOCHS,
    "pgd_steps": 5,
    "surrogate_n": CPU_ATTACK_SETTINGS.surrogate_n,
    # the attacker's images: Fashion-MNIST whatever the task, so a digits-only preset faces defences_64's DAEs
    "surrogate_data": "fashion-mnist",
    "attack_settings": CPU_ATTACK_SETTINGS,
}
_ATTACK_GRID = {
    "encoders": "clean zoo",  # every clean zoo encoder, resolved when the grid is built
    "tasks": ("fashion-mnist", "digits"),
    "defences": ("none",),
    "attacks": UNIVERSAL_ATTACKS,
    "eps": (10.0,),
    "surrogate_n": CPU_ATTACK_SETTINGS.surrogate_n,
    "attack_settings": CPU_ATTACK_SETTINGS,
}
GRID_PRESETS: dict[str, tuple[dict, ...]] = {
    # universal attacks against the undefended victim (a head on the frozen encoder), all data
    "attacks_64": (_ATTACK_GRID,),
    "attacks_64_curve": ({**_ATTACK_GRID, "encoders": ("simclr_r18",), "eps": (4.0, 8.0, 16.0)},),
    # the resolution finding: the zoo's SimCLR recipe trained at 28x28 (`art-ssl pretrain ... --size 28`)
    "attacks_28": (
        {
            **_ATTACK_GRID,
            "encoders": ("evaluations/checkpoints/simclr_r18_28px.safetensors",),
            "size": 28,
            "eps": (10.0, 16.0),
        },
    ),
    # adversarial fine-tuning defences; AutoAttack (2/255) on the first 40 test images of simclr_r18 on Fashion-MNIST
    "defences_64": (
        _DEFENCE_GRID,
        {
            **_DEFENCE_GRID,
            "encoders": ("simclr_r18",),
            "tasks": ("fashion-mnist",),
            "attacks": ("autoattack",),
            "attack_eps": ("autoattack=2",),
            "task_epochs": (),
            "whitebox_n": 40,
        },
    ),
    "defences_curve_64": (
        {
            **_DEFENCE_GRID,
            "encoders": ("simclr_r18",),
            "tasks": ("fashion-mnist",),
            "defences": ("none", "trades"),
            "eps": (4.0, 8.0, 10.0, 16.0),
            "task_epochs": (),
        },
    ),
    # beyond the papers: the same DAEs crafted on another zoo encoder and on the defended model's own encoder
    "defences_sources_64": (
        {
            **_DEFENCE_GRID,
            "encoders": ("simclr_r18",),
            "tasks": ("fashion-mnist",),
            "attacks": (*_DAES, *(f"transfer:{a}" for a in _DAES), *(f"adaptive:{a}" for a in _DAES)),
            "task_epochs": (),
        },
    ),
    # the bench at 10 epochs on Fashion-MNIST (160 optimiser steps; defences_64 has 48): issue 16's "a budget at
    # which the defences have converged", the step the curves (bench_curves_fmnist*.md) say is needed
    "defences_10epochs_64": ({**_DEFENCE_GRID, "tasks": ("fashion-mnist",), "epochs": 10, "task_epochs": ()},),
    # the bench at a converged budget (issue 16): 30 epochs on Fashion-MNIST (480 optimiser steps), the last 3 at
    # 0.1x the learning rates (TRADES' and MART's step decay), where the validation BA and white-box RA of PGD-AT,
    # TRADES, MART and Gen-AF's stage 1 move by less than a point between the last two epochs; Gen-AF's stage 2 (2
    # epochs, as every preset) trades white-box RA for BA and does not settle (bench_curves_fmnist_30_anneal.md)
    "defences_30epochs_64": (
        {**_DEFENCE_GRID, "tasks": ("fashion-mnist",), "epochs": 30, "anneal_epochs": 3, "task_epochs": ()},
    ),
    # digits at 30 epochs (150 optimiser steps, about Fashion-MNIST's 160 at 10 epochs; defences_64 gives digits 50):
    # issue 16's Gen-AF >= TRADES and "no defence below undefended - 10 points" on digits at a converged budget
    "defences_digits_30epochs_64": ({**_DEFENCE_GRID, "tasks": ("digits",), "epochs": 30, "task_epochs": ()},),
    # digits at the converged budget of defences_30epochs_64: the same 30 epochs with the last 3 at 0.1x, where the
    # four adversarial defences' curves settle on digits too (bench_curves_digits_30_anneal.md)
    "defences_digits_30epochs_anneal_64": (
        {**_DEFENCE_GRID, "tasks": ("digits",), "epochs": 30, "anneal_epochs": 3, "task_epochs": ()},
    ),
    # the first digits run, at Fashion-MNIST's 3 epochs (15 optimiser steps): why digits gets 10
    # (it ran before surrogate_data existed, so its DAEs were crafted on digits images, the first task's; kept so)
    "defences_digits_3epochs_64": (
        {**_DEFENCE_GRID, "tasks": ("digits",), "task_epochs": (), "surrogate_data": "digits"},
    ),
}
OFFICIAL_ATTACK_SETTINGS = replace(CPU_ATTACK_SETTINGS, gen_ngf=128, gen_nz_batch=256, gen_epochs=20)
# What each profile changes in every preset (attack_settings fields merge; task_epochs apply where a preset has them).
PROFILES: dict[str, dict] = {
    "bench": {},
    "quick": {
        "surrogate_n": 1000,
        "attack_settings": {"surrogate_n": 1000},
        "n_train": 1000,
        "n_test": 1000,
        "epochs": 2,
        "task_epochs": ("digits=2",),
        "whitebox_n": 10,
        "anneal_epochs": 0,  # 2 epochs have no end to anneal
        "defence_settings": {"genaf_stage2_epochs": 1, "genaf_sensitivity_samples": 200, "genaf_sensitivity_epochs": 1},
    },
    "full": {
        "n_train": None,
        "n_test": None,
        "epochs": 50,
        "pgd_steps": 10,
        "task_epochs": ("digits=50",),
        "whitebox_n": 1000,
        "attack_settings": {"gen_ngf": 128, "gen_nz_batch": 256, "gen_epochs": 20},
        "defence_settings": {"genaf_stage2_epochs": 50},
    },
}
# --tiny on top of any profile: every code path in minutes on a CPU (numbers meaningless), e.g. to prove the full
# profile's path without a GPU.
TINY: dict = {
    "size": 32,
    "n_train": 64,
    "n_test": 64,
    "epochs": 1,
    "task_epochs": ("digits=1",),
    "whitebox_n": 8,
    "anneal_epochs": 0,
    "surrogate_n": 64,
    "attack_settings": {"surrogate_n": 64, "sign_epochs": 1, "gen_epochs": 1, "gen_nz_batch": 4, "gen_ngf": 8},
    "defence_settings": {"genaf_stage2_epochs": 1, "genaf_sensitivity_samples": 16, "genaf_sensitivity_epochs": 1},
}


def preset_grids(
    name: str, profile: str = "bench", device_type: str = "cpu", tiny: bool = False, **overrides
) -> list[GridConfig]:
    """The :class:`~art_ssl.evaluation.GridConfig` parts of preset ``name`` under ``profile`` (and :data:`TINY`),
    with ``overrides`` last (``attack_settings`` / ``defence_settings`` given as dicts merge into the preset's).

    :raises ValueError: an unknown preset or profile.
    """
    if name not in GRID_PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose from {sorted(GRID_PRESETS)}.")
    if profile not in PROFILES:
        raise ValueError(f"Unknown profile {profile!r}; choose from {sorted(PROFILES)}.")
    layers = [PROFILES[profile], *([TINY] if tiny else []), {"device_type": device_type, **overrides}]
    grids = []
    for part in GRID_PRESETS[name]:
        settings = dict(part)
        if settings["encoders"] == "clean zoo":
            settings["encoders"] = tuple(list_encoders(backdoored=False))
        settings.setdefault("attack_settings", AttackSettings())
        settings.setdefault("defence_settings", DefenceSettings())
        for layer in layers:
            for key, value in layer.items():
                if key in ("attack_settings", "defence_settings") and isinstance(value, dict):
                    settings[key] = replace(settings[key], **value)
                elif key == "task_epochs":
                    if settings.get("task_epochs"):  # a preset without them keeps its one epoch count
                        settings[key] = tuple(e for e in value if e.split("=")[0] in settings["tasks"])
                else:
                    settings[key] = value
        grids.append(GridConfig(**settings))
    return grids
