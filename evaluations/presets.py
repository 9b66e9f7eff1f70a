"""
The benchmark's named settings and the command-line options every evaluation script shares. The work itself (attack
line-up, perturbation cache, victim building, defence dispatch, encoder loading, results store) lives in
:mod:`art_ssl.evaluation`; this file only names our CPU-budget presets and maps the options onto its settings.
"""

from __future__ import annotations

import argparse

import numpy as np

from art_ssl.estimators import PyTorchEncoder
from art_ssl.evaluation import universal_perturbations
from art_ssl.evaluation.registry import ENCODER_ATTACKS, UNIVERSAL_ATTACKS, AttackSettings, make_defence_trainer

ATTACKS = UNIVERSAL_ATTACKS
__all__ = ["ATTACKS", "CPU_ATTACK_SETTINGS", "ENCODER_ATTACKS", "TASK_EPOCHS"]  # the scripts import these names

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
