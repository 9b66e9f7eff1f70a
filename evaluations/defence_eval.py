"""
Adversarial fine-tuning defences against downstream-agnostic attacks (issue: trainers), on the benchmark protocol
(DESIGN §6): 64x64 images; the DAEs are crafted once on the *original* public encoder from unlabelled Fashion-MNIST
(the attacker never sees the victim's model or labels), at eps 10/255; the victim fine-tunes a copy of the encoder
with a head (the papers' MLP, 512-512-C, dropout 0.2) on its downstream task, with or without a defence.

Defences: ``none`` (frozen encoder, head trained on clean data: the papers' no-defence victim), ``finetune``
(plain, encoder included), ``pgd_at``, ``trades``, ``mart``, ``genaf`` (both stages). Every trainer uses its paper's
budget and the same epochs, batch and optimisers; only the loss differs.

    python evaluations/defence_eval.py                                     # reduced CPU protocol (defaults)
    python evaluations/defence_eval.py --encoders simclr_r18 --defences none genaf --eps 4 8 10 16 \
        --out evaluations/results/defences_curve_64.csv                  # eps curve of the best defence
    python evaluations/defence_eval.py --epochs 50 --pgd-steps 10 --n-train 0 ... # the papers' settings (GPU)

Beyond the papers (issue 16, DESIGN §6), ``--dae-sources`` adds, beside the standard DAE (``standard``: crafted on
the public encoder), an *adaptive* DAE (``adaptive``: the same attack crafted on the defended victim's own encoder,
i.e. an attacker who knows the defence; columns ``RA_adaptive_*``) and a *transfer* DAE (``transfer``: crafted on
``--transfer-encoder``, another zoo encoder; columns ``RA_transfer_*``):

    python evaluations/defence_eval.py --dae-sources standard adaptive transfer --out ...

Rows are appended to ``--out`` as they finish; a restarted run skips finished rows.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from presets import (
    ENCODER_ATTACKS,
    add_attack_arguments,
    add_cache_argument,
    add_task_epochs_argument,
    attack_settings,
    cached_daes,
    defence_trainer,
    task_epochs,
)

from art_ssl.data import load_task, subsample
from art_ssl.estimators import PyTorchEncoder
from art_ssl.evaluation import (
    ResultStore,
    apply_perturbation,
    autoattack_accuracy,
    build_victim,
    universal_perturbations,
)
from art_ssl.evaluation.sources import encoder_label, load_encoder_spec
from art_ssl.metrics import benign_accuracy, robust_accuracy

DEFENCES = ("none", "finetune", "pgd_at", "trades", "mart", "genaf")
DAE_SOURCES = ("standard", "adaptive", "transfer")


def adaptive_daes(victim, public: PyTorchEncoder, attacks, eps_list, x_surrogate: np.ndarray, args) -> dict:
    """The DAEs of an attacker who knows the defence: each attack crafted on the defended victim's encoder (same
    unlabelled surrogate images, label-free surrogate head on that encoder); not cached (one per trained victim)."""
    defended = PyTorchEncoder(
        victim.model.encoder.eval(),
        public.input_shape,
        clip_values=public.clip_values,
        preprocessing=public.preprocessing,
        device_type=args.device,
    )
    learnt = universal_perturbations(defended, attacks, eps_list, x_surrogate, attack_settings(args), seed=args.seed)
    return {key: value["noise"] for key, value in learnt.items()}


def robust_columns(victim, task, noises: dict, prefix: str = "") -> dict:
    """``RA_{prefix}{attack}_eps{eps}`` of ``victim`` on the test set under each universal perturbation."""
    row = {}
    for (attack, eps_255), noise in noises.items():
        x_adv = apply_perturbation(task.x_test, noise)
        adv_pred = victim.predict(x_adv, batch_size=512).argmax(1)
        row[f"RA_{prefix}{attack}_eps{eps_255:g}"] = robust_accuracy(adv_pred, task.y_test)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", nargs="*", default=["simclr_r18", "barlow_twins_r18"])
    parser.add_argument("--tasks", nargs="*", default=["fashion_mnist", "digits"])
    parser.add_argument("--defences", nargs="*", default=list(DEFENCES), choices=DEFENCES)
    parser.add_argument("--attacks", nargs="*", default=["advencoder", "pap_ugs", "ssp"], choices=ENCODER_ATTACKS)
    parser.add_argument("--eps", nargs="*", type=float, default=[10.0], help="DAE budgets, in 1/255 units")
    parser.add_argument("--n-train", type=int, default=5000, help="downstream training images (0: all)")
    parser.add_argument("--n-test", type=int, default=2000, help="downstream test images (0: all)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--pgd-steps", type=int, default=5)
    parser.add_argument("--genaf-stage2-epochs", type=int, default=2)
    parser.add_argument("--sensitivity-samples", type=int, default=1000)
    parser.add_argument("--sensitivity-epochs", type=int, default=3)
    parser.add_argument("--aa-n", type=int, default=200, help="test images under AutoAttack (0: skip)")
    parser.add_argument("--aa-eps", type=float, default=2.0, help="AutoAttack budget, in 1/255 units")
    parser.add_argument("--aa-version", default="standard")
    parser.add_argument(
        "--aa-encoders",
        nargs="*",
        default=None,
        help="encoders whose victims also face AutoAttack (default: the first of --encoders)",
    )
    parser.add_argument("--aa-tasks", nargs="*", default=["fashion_mnist"], help="tasks whose victims face AutoAttack")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument(
        "--dae-sources",
        nargs="*",
        default=["standard"],
        choices=DAE_SOURCES,
        help="standard (public encoder), adaptive (the defended encoder), transfer (another encoder)",
    )
    parser.add_argument(
        "--transfer-encoder",
        default=None,
        help="encoder of the transfer DAEs (default: the first clean zoo encoder not attacked)",
    )
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--out", default="evaluations/results/defences_64.csv")
    add_attack_arguments(parser)
    add_task_epochs_argument(parser)
    add_cache_argument(parser)
    args = parser.parse_args()
    aa_encoders = args.encoders[:1] if args.aa_encoders is None else args.aa_encoders

    out = ResultStore(args.out, ("encoder", "task", "defence"))
    fmnist = load_task("fashion_mnist", size=args.size)
    x_sur, _ = subsample(fmnist.x_train, fmnist.y_train, args.surrogate_n, seed=args.seed + 1)

    for enc_name in args.encoders:
        enc_label, method = encoder_label(enc_name)
        public = load_encoder_spec(enc_name, args.size, args.device)
        noises = cached_daes(enc_label, public, args.attacks, args.eps, x_sur, args)
        transfer_noises = {}
        if "transfer" in args.dae_sources:
            from art_ssl.zoo import list_encoders

            source = args.transfer_encoder or next(
                n for n in list_encoders(backdoored=False) if n not in (enc_name, enc_label) and n not in args.encoders
            )
            src_label, _ = encoder_label(source)
            src_encoder = load_encoder_spec(source, args.size, args.device)
            transfer_noises = cached_daes(src_label, src_encoder, args.attacks, args.eps, x_sur, args)
        for task_name in args.tasks:
            task = load_task(
                task_name, size=args.size, n_train=args.n_train or None, n_test=args.n_test or None, seed=args.seed
            )
            for defence in args.defences:
                if out.has(encoder=enc_label, task=task_name, defence=defence):
                    continue
                victim = build_victim(public, task.nb_classes, seed=args.seed, device_type=args.device)
                epochs = task_epochs(args, task_name, args.epochs)
                trainer = defence_trainer(defence, victim, args, epochs)
                start = time.perf_counter()
                trainer.fit(task.x_train, task.y_train)
                train_seconds = time.perf_counter() - start
                clean_pred = victim.predict(task.x_test, batch_size=512).argmax(1)
                row = {
                    "encoder": enc_label,
                    "method": method,
                    "task": task_name,
                    "defence": defence,
                    "BA": benign_accuracy(clean_pred, task.y_test),
                }
                if "standard" in args.dae_sources:
                    row.update(robust_columns(victim, task, noises))
                if "adaptive" in args.dae_sources:
                    adaptive = adaptive_daes(victim, public, args.attacks, args.eps, x_sur, args)
                    row.update(robust_columns(victim, task, adaptive, "adaptive_"))
                if transfer_noises:
                    row.update(robust_columns(victim, task, transfer_noises, "transfer_"))
                    row["transfer_encoder"] = src_label
                if args.aa_n and enc_name in aa_encoders and task_name in args.aa_tasks:
                    start_aa = time.perf_counter()
                    n = min(args.aa_n, len(task.x_test))
                    row[f"RA_autoattack_eps{args.aa_eps:g}"] = autoattack_accuracy(
                        victim,
                        task.x_test[:n],
                        task.y_test[:n],
                        eps=args.aa_eps / 255,
                        version=args.aa_version,
                        seed=args.seed,
                    )[0]
                    row["autoattack_n"], row["autoattack_seconds"] = n, round(time.perf_counter() - start_aa, 1)
                row.update(
                    {
                        "train_seconds": round(train_seconds, 1),
                        "epochs": epochs,
                        "pgd_steps": args.pgd_steps,
                        "n_train": len(task.x_train),
                        "n_test": len(task.x_test),
                        "seed": args.seed,
                    }
                )
                out.append([row])
                print(pd.DataFrame([row]).round(3).to_string(index=False), flush=True)


if __name__ == "__main__":
    main()
