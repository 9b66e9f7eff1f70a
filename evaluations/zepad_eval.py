"""
ZePAD evaluation (issue: ZePAD), on the protocol of the ``defences_64`` preset (DESIGN §6): 64x64, DAEs crafted
once on the *public* victim encoder from unlabelled Fashion-MNIST at eps 10/255 (same cache), the same downstream
train/test split, heads 512-512-C with dropout 0.2.

For each task ZePAD is trained once (MPAE: the victim encoder and ``--auxiliary``, from another SSL method, each
adversarially fine-tuned as Gen-AF stage 1, or ``--mpae-trainer``; BMP: ``--bmp``, by default a clean zoo
encoder other than the victim and the auxiliary, as the official code; every branch a head trained on clean data).
Written tables (``--out-dir``; with a ``--victim`` other than simclr_r18 each name gets ``_<victim>`` before
``_64``):

- ``zepad_64.csv``: BA and RA under each DAE for: no defence (the clean victim encoder with a head trained on clean
  data, exactly the papers' undefended victim), the BMP branch alone, each MPAE branch alone, ZePAD with federal /
  equal / entropy fusion, ZePAD without BMP, ZePAD with one MPAE encoder (the victim's), ZePAD with the clean victim
  as BMP (the pre-issue-16 build), and Gen-AF (both stages) with the same data and epochs. The ablations are
  :class:`ZePADModel` over subsets of the trained branches (what ``use_bmp=False`` / ``use_auxiliary=False``
  build with the same seeds).
- ``zepad_detection_64.csv``: the training-free detector on the clean test set versus each DAE-perturbed copy:
  accuracy at the paper's threshold 0.1 and AUROC, for the paper's signed gap and its absolute value.
- ``zepad_transfer_64.csv``: persistent robustness, MPAE encoders fine-tuned once on one task and reused with new
  heads only on the other (Fashion-MNIST -> digits and back), next to the natively trained ones.
- ``zepad_adaptive_64.csv``: white-box attacks on the fused classifier of the first task: ART's PGD, pyautoattack's
  standard AutoAttack, and a detector-aware PGD that also drives the detector's score below its threshold.

    python evaluations/zepad_eval.py                      # reduced CPU protocol (defaults)
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from art.attacks.evasion import ProjectedGradientDescent
from art.estimators.classification import PyTorchClassifier
from presets import (
    ENCODER_ATTACKS,
    add_attack_arguments,
    add_cache_argument,
    add_task_epochs_argument,
    cached_daes,
    defence_trainer,
    task_epochs,
)
from torch import nn

from art_ssl.core.pgd import pgd_linf
from art_ssl.data import load_task, subsample
from art_ssl.defences.detector import ZePADDetector
from art_ssl.defences.trainer import ZePADModel, ZePADTrainer
from art_ssl.evaluation import apply_perturbation, autoattack_accuracy, build_victim
from art_ssl.evaluation.registry import make_defence_trainer
from art_ssl.evaluation.sources import encoder_label, load_encoder_spec
from art_ssl.metrics import benign_accuracy, detection_accuracy, detection_auroc, robust_accuracy

LOCATIONS = ("--out-dir", "--cache")  # options that say where, not how: left out of the captions' command
DEFAULT_VICTIM = "simclr_r18"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--victim", default=DEFAULT_VICTIM, help="the public encoder the attacker holds")
    parser.add_argument("--auxiliary", default="barlow_twins_r18", help="second MPAE encoder (another SSL method)")
    parser.add_argument(
        "--bmp", default="auto", help="BMP encoder: 'auto' (a different clean zoo encoder), a zoo name, or 'victim'"
    )
    parser.add_argument("--mpae-trainer", default="genaf", choices=["genaf", "trades", "mart", "pgd_at"])
    parser.add_argument(
        "--mpae-lambda-gr",
        default=None,
        help="Gen-AF's lambda_gr in the MPAE fine-tuning: a number (the official 20) or 'auto' (default: ZePAD's)",
    )
    parser.add_argument(
        "--mpae-heads", default="clean", choices=["clean", "finetuned"], help="ZePADTrainer(mpae_heads=...)"
    )
    parser.add_argument("--skip-transfer", action="store_true", help="no persistent-robustness table")
    parser.add_argument("--tasks", nargs="*", default=["fashion_mnist", "digits"])
    parser.add_argument("--attacks", nargs="*", default=["advencoder", "pap_ugs", "ssp"], choices=ENCODER_ATTACKS)
    parser.add_argument("--eps", type=float, default=10.0, help="DAE budget, in 1/255 units")
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--aft-epochs", type=int, default=5, help="adversarial fine-tuning of each MPAE encoder")
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--pgd-steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--genaf-stage2-epochs", type=int, default=2)
    parser.add_argument("--sensitivity-samples", type=int, default=1000, help="Gen-AF stage-2 probe images")
    parser.add_argument("--sensitivity-epochs", type=int, default=3, help="Gen-AF stage-2 ascent passes")
    parser.add_argument(
        "--skip-genaf", action="store_true", help="no Gen-AF row (the defences_64 preset trains the same Gen-AF victim)"
    )
    parser.add_argument("--adaptive-n", type=int, default=500, help="test images under white-box PGD (0: skip)")
    parser.add_argument("--adaptive-eps", nargs="*", type=float, default=[2.0, 10.0], help="in 1/255 units")
    parser.add_argument("--adaptive-steps", type=int, default=20)
    parser.add_argument("--detector-weight", type=float, default=10.0, help="weight of the detector term")
    parser.add_argument("--aa-n", type=int, default=100, help="test images under AutoAttack (0: skip)")
    parser.add_argument("--aa-eps", type=float, default=2.0)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--out-dir", default="evaluations/results")
    parser.add_argument("--verbose", action="store_true")
    add_attack_arguments(parser)
    add_task_epochs_argument(parser)
    add_cache_argument(parser)
    return parser.parse_args()


def command_line(argv: list[str]) -> str:
    """The command that made a table, without ``--out-dir`` and ``--cache`` (where the table was written and where
    the DAEs are cached are not how it was made)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in LOCATIONS:
            skip = True
        elif not arg.startswith(tuple(f"{option}=" for option in LOCATIONS)):
            kept.append(shlex.quote(arg))
    return " ".join(["python evaluations/zepad_eval.py", *kept])


def table_path(out_dir: Path, kind: str, victim: str) -> Path:
    """``zepad[_kind]_64.csv`` for the default victim, ``zepad[_kind]_<victim>_64.csv`` for another (so that one
    victim's run does not overwrite the other's tables)."""
    label = "" if victim == DEFAULT_VICTIM else encoder_label(victim)[0].replace(".", "_")  # the tables' own name
    parts = ["zepad", kind, label, "64"]
    return out_dir / ("_".join(p for p in parts if p) + ".csv")


def _lambda(text: str) -> float | str:
    return text if text == "auto" else float(text)


def fused(branches: list[nn.Module], bmp: nn.Module | None, fusion: str, like: PyTorchClassifier) -> PyTorchClassifier:
    """An ART classifier over a ZePADModel built from already trained branches."""
    model = ZePADModel(branches, bmp, fusion).eval()
    return PyTorchClassifier(
        model,
        loss=nn.CrossEntropyLoss(),
        input_shape=like.input_shape,
        nb_classes=like.nb_classes,
        clip_values=like.clip_values,
        device_type="gpu" if like.device.type == "cuda" else "cpu",
    )


def variants(
    zepad: PyTorchClassifier, undefended: nn.Module, finetuned: list[nn.Module] | None = None
) -> dict[str, PyTorchClassifier]:
    """No defence, single branches, the three fusions and the structural ablations, from one trained ZePAD and the
    undefended victim (clean victim encoder + clean head); with ``finetuned`` (the trainer's ``finetuned_models_``
    from a run with clean MPAE heads), also ZePAD whose MPAE branches keep the fine-tuning's own heads."""
    model: ZePADModel = zepad.model
    mpae, bmp = list(model.mpae), model.bmp
    out = {
        "none (clean victim encoder + head)": fused([undefended], None, "equal", zepad),
        "BMP branch alone": fused([bmp], None, "equal", zepad),
    }
    for i, branch in enumerate(mpae):
        out[f"MPAE branch {i} alone"] = fused([branch], None, "equal", zepad)
    for rule in ("federal", "equal", "entropy"):
        out[f"ZePAD {rule}"] = fused(mpae, bmp, rule, zepad)
    out["ZePAD federal, no BMP"] = fused(mpae, None, "federal", zepad)
    out["ZePAD federal, one MPAE (victim)"] = fused(mpae[:1], bmp, "federal", zepad)
    out["ZePAD federal, BMP = clean victim (pre-issue-16)"] = fused(mpae, undefended, "federal", zepad)
    if finetuned:
        # the same encoders (the clean-head branches hold copies) and BMP branch; only the MPAE heads differ
        # (``mpae_heads="finetuned"`` trained alone would also draw the BMP head's initialisation at another point of
        # the seeded stream)
        out["ZePAD federal, MPAE heads finetuned"] = fused(finetuned, bmp, "federal", zepad)
    return out


def train_undefended(public, task, args) -> nn.Module:
    """The papers' undefended victim: the clean public encoder, frozen, with a head trained on clean data."""
    victim = build_victim(public, task.nb_classes, seed=args.seed, device_type=args.device)
    make_defence_trainer(
        "none", victim, args.head_epochs, batch_size=args.batch_size, seed=args.seed, verbose=args.verbose
    ).fit(task.x_train, task.y_train)
    return victim.model.eval()


def ba_ra(clf: PyTorchClassifier, task, noises: dict) -> dict:
    row = {"BA": benign_accuracy(clf.predict(task.x_test, batch_size=512).argmax(1), task.y_test)}
    for (attack, eps_255), noise in noises.items():
        x_adv = apply_perturbation(task.x_test, noise)
        row[f"RA_{attack}_eps{eps_255:g}"] = robust_accuracy(clf.predict(x_adv, batch_size=512).argmax(1), task.y_test)
    return row


def train_zepad(public, auxiliary, task, args, mpae_encoders=None) -> ZePADTrainer:
    """ZePAD on ``task`` (adversarial fine-tuning for ``--aft-epochs``, or ``--task-epochs`` for this task)."""
    victim = build_victim(public, task.nb_classes, seed=args.seed, device_type=args.device)
    aft_epochs = task_epochs(args, task.name, args.aft_epochs)
    trainer = ZePADTrainer(
        victim,
        auxiliary_encoder=auxiliary,
        mpae_encoders=mpae_encoders,
        aft_epochs=aft_epochs,
        head_epochs=args.head_epochs,
        pgd_steps=args.pgd_steps,
        bmp_encoder=args.bmp,
        mpae_trainer=args.mpae_trainer,
        **({} if args.mpae_lambda_gr is None else {"lambda_gr": _lambda(args.mpae_lambda_gr)}),
        mpae_heads=args.mpae_heads if mpae_encoders is None else "clean",
        batch_size=args.batch_size,
        seed=args.seed,
        verbose=args.verbose,
    )
    trainer.fit(task.x_train, task.y_train)
    return trainer


def train_genaf(public, task, args) -> PyTorchClassifier:
    victim = build_victim(public, task.nb_classes, seed=args.seed, device_type=args.device)
    epochs = task_epochs(args, task.name, args.aft_epochs)
    defence_trainer("genaf", victim, args, epochs).fit(task.x_train, task.y_train)
    return victim


def detection_rows(zepad: PyTorchClassifier, task, noises: dict) -> list[dict]:
    rows = []
    for score in ("gap", "abs_gap"):
        detector = ZePADDetector(zepad, threshold=0.1, score=score)
        clean_report, clean_flag = detector.detect(task.x_test)
        for (attack, eps_255), noise in noises.items():
            adv_report, adv_flag = detector.detect(apply_perturbation(task.x_test, noise))
            truth = np.r_[np.zeros(len(clean_flag)), np.ones(len(adv_flag))].astype(bool)
            rows.append(
                {
                    "score": score,
                    "attack": attack,
                    "eps_255": eps_255,
                    "threshold": 0.1,
                    "detection_accuracy": detection_accuracy(np.r_[clean_flag, adv_flag], truth),
                    "auroc": detection_auroc(np.r_[clean_report["score"], adv_report["score"]], truth),
                    "true_positive_rate": float(adv_flag.mean()),
                    "false_positive_rate": float(clean_flag.mean()),
                    "mean_gap_clean": float(clean_report["gap"].mean()),
                    "mean_gap_dae": float(adv_report["gap"].mean()),
                }
            )
    return rows


def detector_aware_pgd(zepad: PyTorchClassifier, x: np.ndarray, y: np.ndarray, eps: float, args) -> np.ndarray:
    """PGD on ``CE(fused logits) - w * relu(gap - threshold + margin)``: misclassify while keeping the detector's
    signed gap (MPAE minus BMP confidence) under its threshold."""
    model: ZePADModel = zepad.model
    out = []
    for i in range(0, len(x), 100):
        xb, yb = torch.from_numpy(x[i : i + 100]), torch.from_numpy(y[i : i + 100])

        def loss(x_adv: torch.Tensor, yb: torch.Tensor = yb) -> torch.Tensor:
            branch = model.branch_logits(x_adv)
            conf = F.softmax(branch, dim=-1).amax(-1)
            gap = conf[:, :-1].mean(1) - conf[:, -1]
            fused_logits = model(x_adv)
            return (
                F.cross_entropy(fused_logits, yb, reduction="none") - args.detector_weight * F.relu(gap - 0.1 + 0.05)
            ).sum()

        out.append(
            pgd_linf(
                loss,
                xb,
                eps=eps,
                step_size=eps / 4,
                steps=args.adaptive_steps,
                generator=torch.Generator().manual_seed(args.seed),
            ).numpy()
        )
    return np.concatenate(out)


def adaptive_rows(zepad: PyTorchClassifier, task, args) -> list[dict]:
    n = min(args.adaptive_n, len(task.x_test))
    x, y = task.x_test[:n], task.y_test[:n]
    detector = ZePADDetector(zepad, threshold=0.1)
    rows = []

    def record(attack: str, eps_255: float, x_adv: np.ndarray, seconds: float) -> None:
        pred = zepad.predict(x_adv, batch_size=256).argmax(1)
        flagged = detector.detect(x_adv)[1]
        fooled = pred != y
        rows.append(
            {
                "attack": attack,
                "eps_255": eps_255,
                "n": len(x),
                "RA": float(1 - fooled.mean()),
                "detected": float(flagged.mean()),
                "fooled_and_undetected": float((fooled & ~flagged).mean()),
                "seconds": round(seconds, 1),
            }
        )
        print(rows[-1], flush=True)

    record("clean", 0.0, x, 0.0)
    for eps_255 in args.adaptive_eps:
        eps = eps_255 / 255
        start = time.perf_counter()
        pgd = ProjectedGradientDescent(
            zepad, eps=eps, eps_step=eps / 4, max_iter=args.adaptive_steps, batch_size=100, verbose=False
        )
        np.random.seed(args.seed)
        record(
            "ART PGD (white-box, fused)", eps_255, pgd.generate(x, y=y).astype(np.float32), time.perf_counter() - start
        )
        start = time.perf_counter()
        record("detector-aware PGD", eps_255, detector_aware_pgd(zepad, x, y, eps, args), time.perf_counter() - start)
    if args.aa_n:
        m = min(args.aa_n, n)
        start = time.perf_counter()
        ra, x_adv = autoattack_accuracy(zepad, x[:m], y[:m], eps=args.aa_eps / 255, seed=args.seed)
        flagged = detector.detect(x_adv)[1]
        fooled = zepad.predict(x_adv, batch_size=256).argmax(1) != y[:m]
        rows.append(
            {
                "attack": "AutoAttack standard (pyautoattack)",
                "eps_255": args.aa_eps,
                "n": m,
                "RA": ra,
                "detected": float(flagged.mean()),
                "fooled_and_undetected": float((fooled & ~flagged).mean()),
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        print(rows[-1], flush=True)
    return rows


def write(frame: pd.DataFrame, path: Path, caption: str) -> None:
    frame.to_csv(path, index=False)
    path.with_suffix(".md").write_text(caption + "\n\n" + frame.to_markdown(index=False, floatfmt=".3f") + "\n")
    print(frame.round(3).to_string(index=False), flush=True)


def main() -> None:
    args = parse_args()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    setting = (
        f"victim {args.victim}, auxiliary {args.auxiliary}, {args.size}x{args.size}, n_train {args.n_train}, "
        f"n_test {args.n_test}, AFT {args.aft_epochs} epochs ({' '.join(args.task_epochs) or 'all tasks'}) "
        f"PGD-{args.pgd_steps}, heads {args.head_epochs} epochs, BMP {args.bmp}, MPAE by {args.mpae_trainer}"
        f" (lambda_gr {args.mpae_lambda_gr or 'auto, the default'}), "
        f"MPAE heads {args.mpae_heads}, "
        f"DAEs at eps {args.eps:g}/255, seed {args.seed}; command: `{command_line(sys.argv[1:])}`"
    )
    fmnist = load_task("fashion_mnist", size=args.size)
    x_sur, _ = subsample(fmnist.x_train, fmnist.y_train, args.surrogate_n, seed=args.seed + 1)
    victim_label, _ = encoder_label(args.victim)
    public = load_encoder_spec(args.victim, args.size, args.device)
    auxiliary = load_encoder_spec(args.auxiliary, args.size, args.device)
    noises = cached_daes(victim_label, public, args.attacks, [args.eps], x_sur, args)
    tasks = {
        name: load_task(name, size=args.size, n_train=args.n_train or None, n_test=args.n_test or None, seed=args.seed)
        for name in args.tasks
    }

    main_rows, detect_rows, trained = [], [], {}
    for name, task in tasks.items():
        start = time.perf_counter()
        trainer = train_zepad(public, auxiliary, task, args)
        seconds = time.perf_counter() - start
        trained[name] = trainer
        for model_name, clf in variants(
            trainer.get_classifier(),
            train_undefended(public, task, args),
            trainer.finetuned_models_ if trainer.mpae_heads == "clean" else None,  # "finetuned": they are the branches
        ).items():
            row = {"task": name, "model": model_name, **ba_ra(clf, task, noises)}
            if model_name == "ZePAD federal":
                row["train_seconds"] = round(seconds, 1)
            main_rows.append(row)
        if not args.skip_genaf:
            start = time.perf_counter()
            genaf = train_genaf(public, task, args)
            main_rows.append(
                {
                    "task": name,
                    "model": "Gen-AF (both stages)",
                    **ba_ra(genaf, task, noises),
                    "train_seconds": round(time.perf_counter() - start, 1),
                }
            )
        detect_rows += [{"task": name, **r} for r in detection_rows(trainer.get_classifier(), task, noises)]
        write(
            pd.DataFrame(main_rows),
            table_path(out_dir, "", args.victim),
            f"ZePAD against DAEs ({setting})",
        )
        write(
            pd.DataFrame(detect_rows),
            table_path(out_dir, "detection", args.victim),
            f"ZePAD's training-free DAE detector, clean test set vs its DAE copy ({setting})",
        )

    transfer_rows = []
    for src in [] if args.skip_transfer else tasks:
        for dst, task in tasks.items():
            if src == dst:
                zepad = trained[dst].get_classifier()
            else:  # reuse the MPAE encoders fine-tuned on `src`; only new heads on `dst`
                zepad = train_zepad(public, auxiliary, task, args, trained[src].mpae_encoders_).get_classifier()
            transfer_rows.append({"mpae_tuned_on": src, "task": dst, **ba_ra(zepad, task, noises)})
    undefended = {r["task"]: r for r in main_rows if r["model"].startswith("none")}
    for row in transfer_rows:
        row["BA_no_defence"] = undefended[row["task"]]["BA"]
    if transfer_rows:
        write(
            pd.DataFrame(transfer_rows),
            table_path(out_dir, "transfer", args.victim),
            f"Persistent robustness: MPAE encoders fine-tuned once, reused with new heads ({setting})",
        )
    if args.adaptive_n < 1:
        return
    first = next(iter(tasks))
    adaptive = adaptive_rows(trained[first].get_classifier(), tasks[first], args)
    write(
        pd.DataFrame(adaptive).assign(task=first),
        table_path(out_dir, "adaptive", args.victim),
        f"Adaptive white-box attacks on the fused ZePAD classifier and its detector, {first} ({setting}; PGD "
        f"{args.adaptive_steps} steps of eps/4, detector weight {args.detector_weight})",
    )


if __name__ == "__main__":
    main()
