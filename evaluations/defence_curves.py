"""
Per-epoch validation curves of the adversarial fine-tuning defences (issue 16): which setting of each trainer
trains at all on our small encoders, and where its benign (``val_ba``) and white-box PGD (``val_ra``, the trainer's
own budget) accuracies stop moving.

A *setting* is a defence and the options that issue 16 adds: Gen-AF's ``gr_reduction`` (sum / batchmean / mean),
``head_init`` (random / probe, LP-FT) and ``lambda_gr``; ``head_init`` and the budget warm-ups (``warmK`` epochs,
``rampF`` fraction of the steps) for PGD-AT, TRADES, MART and Gen-AF's stage 1. Every setting
starts from the same victim (copy of the zoo encoder, the papers' 512-512 MLP head seeded by ``--seed``), the same
data and the same PGD steps; ``--stages 1`` runs Gen-AF's stage 1 only (where the balance question lives).

    python evaluations/defence_curves.py --task fashion_mnist_subset --n-train 2000 --n-val 500 --epochs 1 \
        --settings genaf:sum:random genaf:batchmean:random genaf:mean:random genaf:sum:probe \
        genaf:batchmean:probe genaf:mean:probe genaf_l0:sum:random trades:random \
        --out evaluations/results/genaf_balance.csv
    python evaluations/defence_curves.py --task digits --epochs 4 --settings pgd_at:random pgd_at:probe \
        mart:random mart:probe trades:random trades:probe --out evaluations/results/baseline_curves_digits.csv
    python evaluations/defence_curves.py --task digits --encoder simclr_r18 --n-train 1257 --n-val 300 --epochs 10 \
        --threads 1 --settings genaf:sum:probe:lamauto:ramp0.8 genaf:sum:probe:lamauto:ramp0 \
        --out evaluations/results/genaf_curves_digits_warmup.csv

The last is one line of ``evaluations/genaf_warmup_runs.sh``, which makes Gen-AF's warm-up tables
(``results/genaf_curves_digits_warmup.md``, ``genaf_curves_digits_levers.md``, ``genaf_curves_fmnist_warmup.md``).

Rows (one per setting and training epoch; the head warm start's epochs are not curves) are appended to ``--out``;
a restarted run skips finished settings. ``--md`` renders the CSV as a markdown table (every epoch).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from art_ssl.data import load_task
from art_ssl.defences.trainer import FineTuningTrainer, GenAFTrainer, MARTTrainer, TRADESTrainer
from art_ssl.evaluation import build_victim
from art_ssl.zoo import load_encoder


def make_trainer(setting: str, classifier, args):
    """``defence[:reduction]:head_init[:warmK][:rampF]`` -> the trainer (``genaf_l0``: Gen-AF with ``lambda_gr=0``;
    ``warmK``: PGD budget warm-up over K epochs, PGD-AT / TRADES / MART / Gen-AF; ``rampF``: step by step over the
    fraction F of the run (``eps_warmup_fraction``; ``ramp0``: none, the papers' recipe; without it, the trainer's
    default); ``cleanW``:
    PGD-AT with clean weight W; ``lamL``: Gen-AF with ``lambda_gr=L``, e.g. ``lamauto``; ``balB``: Gen-AF with
    ``gr_balance=B``; ``decayG``: the learning rates multiplied by G after every epoch, ``lr_decay=G``; without
    it, the trainer's default; ``msE1,E2``: also by 0.1 after epochs E1 and E2, ``lr_milestones=(E1, E2)``;
    ``st2eE``: Gen-AF's stage 2 for E epochs instead of ``--stage2-epochs``)."""
    parts = setting.split(":")
    warm = [p for p in parts if p.startswith("warm")]
    ramp = [p for p in parts if p.startswith("ramp")]
    clean = [p for p in parts if p.startswith("clean")]
    lam = [p for p in parts if p.startswith("lam")]
    bal = [p for p in parts if p.startswith("bal")]
    decay = [p for p in parts if p.startswith("decay")]
    milestones = [p for p in parts if p.startswith("ms")]
    stage2 = [p for p in parts if p.startswith("st2e")]
    parts = [p for p in parts if not p.startswith(("warm", "ramp", "clean", "lam", "bal", "decay", "ms", "st2e"))]
    name, head_init = parts[0], parts[-1]
    common = {
        "nb_epochs": args.epochs,
        "batch_size": args.batch_size,
        "pgd_steps": args.pgd_steps,
        "validation_pgd_steps": args.val_pgd_steps,
        "seed": args.seed,
        "verbose": args.verbose,
        "head_init": head_init,
        "head_init_epochs": args.head_init_epochs,
    }
    if warm:
        common["eps_warmup_epochs"] = int(warm[0][4:])
    if ramp:
        common["eps_warmup_fraction"] = float(ramp[0][4:])
    if decay:
        common["lr_decay"] = float(decay[0][5:])
    if milestones:
        common["lr_milestones"] = tuple(int(m) for m in milestones[0][2:].split(","))
    if name in ("genaf", "genaf_l0"):
        return GenAFTrainer(
            classifier,
            stages=tuple(args.stages),
            gr_reduction=parts[1],
            lambda_gr=0.0 if name == "genaf_l0" else _lambda(lam[0][3:]) if lam else args.lambda_gr,
            gr_balance=float(bal[0][3:]) if bal else 1.0,
            stage2_epochs=int(stage2[0][4:]) if stage2 else args.stage2_epochs,
            sensitivity_samples=args.sensitivity_samples,
            sensitivity_epochs=args.sensitivity_epochs,
            **common,
        )
    if name == "pgd_at":
        return FineTuningTrainer(
            classifier, adversarial=True, clean_weight=float(clean[0][5:]) if clean else 0.0, **common
        )
    if name == "trades":
        return TRADESTrainer(classifier, **common)
    if name == "mart":
        return MARTTrainer(classifier, **common)
    raise ValueError(f"Unknown setting {setting!r}.")


def _column(df: pd.DataFrame, column: str, default: object) -> pd.Series:
    """``df[column]`` as text (``1.0`` read back from a CSV is ``"1"``), ``default`` where the row or the file
    predates the column."""
    values = df[column] if column in df else pd.Series(default, index=df.index, dtype=object)
    values = values.astype(object).where(values.notna(), default)
    return values.map(_text)


def _text(value: object) -> str:
    """``1``, ``1.0`` and ``"1.0"`` (a CSV column that held a NaN, read back) are all ``"1"``; ``"1+2"`` stays."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else str(value)


def _lambda(text: str) -> float | str:
    return text if text == "auto" else float(text)


def to_markdown(df: pd.DataFrame) -> str:
    """Every epoch of every setting (the curves), in the order the settings were run."""
    cols = [
        "task",
        "encoder",
        "setting",
        "seed",
        "stages",
        "n_train",
        "pgd_steps",
        "stage",
        "epoch",
        "val_ba",
        "val_ra",
    ]
    cols += ["seconds_total", "lambda_gr_used"]  # lambda: Gen-AF rows
    df = df[[c for c in cols if c in df]].astype({c: int for c in ("n_train", "pgd_steps", "epoch") if c in df})
    df = df.assign(seed=_column(df, "seed", 0), stages=_column(df, "stages", "1"))  # rows from before these columns
    if "lambda_gr_used" in df:  # often far below 0.001: three significant digits, not three decimals
        df = df.assign(lambda_gr_used=df["lambda_gr_used"].map(lambda v: "" if pd.isna(v) else f"{v:.3g}"))
    return df.round({"seconds_total": 0}).to_markdown(index=False, floatfmt=".3f")


# The tasks of these curves have 10 classes (chance 0.10): a final validation BA at or below this is a collapse.
COLLAPSED_BA = 0.15


# Epochs over which a curve that meets the two-epoch rule is checked for a slow drift.
DRIFT_EPOCHS = 5


def _drift_window(curve: pd.DataFrame) -> pd.DataFrame | None:
    """The curve's last :data:`DRIFT_EPOCHS` + 1 epochs, or those since its last step decay (an epoch run at under
    half the rate of the one before, ``lr_milestones``; the per-epoch decay never halves it) where there are 3 or
    more, since the step's one-off jump is the end of training, not a drift; ``None`` where neither is there."""
    rates = [c for c in curve if c.startswith("lr_") and curve[c].notna().all()]
    if rates:
        rate = curve[rates[0]].to_numpy(dtype=float)
        steps = np.flatnonzero(rate[1:] < 0.5 * rate[:-1]) + 1
        if len(steps) and steps[-1] > len(curve) - 1 - DRIFT_EPOCHS:
            return curve.iloc[steps[-1] :] if len(curve) - steps[-1] >= 3 else None
    return curve.iloc[-1 - DRIFT_EPOCHS :] if len(curve) > DRIFT_EPOCHS else None


def convergence(df: pd.DataFrame, tolerance: float = 0.01) -> pd.DataFrame:
    """Per curve (setting, seed, Gen-AF stage): the last epoch's ``val_ba`` / ``val_ra``, their change from the epoch
    before, their change over the last :data:`DRIFT_EPOCHS` epochs or since the last step decay (``drift_ba`` /
    ``drift_ra``, :func:`_drift_window`), and ``status``: ``"converged"`` when
    both moved by less than ``tolerance`` between the last two epochs (issue 16's rule: < 1 point) and by less than
    twice that over the drift window, ``"drifting"`` when only the drift window fails (a slow steady trend that the
    two-epoch rule alone would call converged), ``"moving"``, or ``"collapsed (chance-level BA)"`` (BA <=
    :data:`COLLAPSED_BA`), which is never reported as converged."""
    keys = [c for c in ("task", "encoder", "setting", "seed", "stages", "stage") if c in df]
    frame = df.assign(seed=_column(df, "seed", 0), stages=_column(df, "stages", "1"))
    rows = []
    for key, curve in frame.groupby(keys, sort=False, dropna=False):
        curve = curve.sort_values("epoch")
        last = curve.iloc[-1]
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        row |= {"epochs": int(last["epoch"]), "val_ba": last["val_ba"], "val_ra": last["val_ra"]}
        if len(curve) >= 2:
            before = curve.iloc[-2]
            row["change_ba"] = last["val_ba"] - before["val_ba"]
            row["change_ra"] = last["val_ra"] - before["val_ra"]
            still = abs(row["change_ba"]) < tolerance and abs(row["change_ra"]) < tolerance
            row["status"] = "converged" if still else "moving"
        window = _drift_window(curve)
        if window is not None:
            row["drift_ba"] = last["val_ba"] - window.iloc[0]["val_ba"]
            row["drift_ra"] = last["val_ra"] - window.iloc[0]["val_ra"]
            steady = abs(row["drift_ba"]) < 2 * tolerance and abs(row["drift_ra"]) < 2 * tolerance
            if row.get("status") == "converged" and not steady:
                row["status"] = "drifting"
        if last["val_ba"] <= COLLAPSED_BA:  # a curve stuck at chance is not a converged defence
            row["status"] = "collapsed (chance-level BA)"
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="fashion_mnist_subset")
    parser.add_argument("--encoder", default="simclr_r18")
    parser.add_argument("--settings", nargs="*", required=True)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-val", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--stages", nargs="*", type=int, default=[1])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--pgd-steps", type=int, default=5)
    parser.add_argument("--val-pgd-steps", type=int, default=5)
    parser.add_argument("--lambda-gr", type=float, default=20.0)
    parser.add_argument("--head-init-epochs", type=int, default=10)
    parser.add_argument("--stage2-epochs", type=int, default=2)
    parser.add_argument("--sensitivity-samples", type=int, default=500)
    parser.add_argument("--sensitivity-epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"], help="gpu: CUDA when available")
    parser.add_argument("--root", default=None, help="Fashion-MNIST IDX folder for --task fashion_mnist")
    parser.add_argument("--checkpoint-dir", default=None, help="resumable training state, one folder per setting")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--out", required=True)
    parser.add_argument("--md", default=None, help="also write every epoch as a markdown table here")
    parser.add_argument("--caption", default=None, help="a paragraph above the --md table (what, and the command)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    task = load_task(args.task, size=64, n_train=args.n_train, n_test=args.n_val, seed=args.seed, root=args.root)
    public = load_encoder(args.encoder, "cpu")
    stages = "+".join(map(str, args.stages))  # Gen-AF's stages (a column, "1" or "1+2")
    try:
        done = pd.read_csv(args.out)
    except FileNotFoundError:
        done = pd.DataFrame(columns=["task", "encoder", "setting"])
    for setting in args.settings:
        key = (done["task"] == args.task) & (done["encoder"] == args.encoder) & (done["setting"] == setting)
        key &= _column(done, "seed", 0) == str(args.seed)
        key &= _column(done, "stages", "1") == stages
        if key.any():
            continue
        victim = build_victim(public, task.nb_classes, seed=args.seed, device_type=args.device)
        trainer = make_trainer(setting, victim, args)
        start = time.perf_counter()
        ckpt = None if args.checkpoint_dir is None else f"{args.checkpoint_dir}/{setting.replace(':', '_')}"
        trainer.fit(task.x_train, task.y_train, validation_data=(task.x_test, task.y_test), checkpoint_dir=ckpt)
        hist = trainer.history_
        rows = hist.assign(
            task=args.task,
            encoder=args.encoder,
            setting=setting,
            n_train=len(task.x_train),
            pgd_steps=args.pgd_steps,
            seconds_total=time.perf_counter() - start,
            seed=args.seed,
            stages=stages,
        )
        if getattr(trainer, "lambda_gr_", None) is not None:  # Gen-AF: the weight used (``"auto"`` resolved)
            rows = rows.assign(lambda_gr_used=trainer.lambda_gr_)
        rows = rows.assign(epoch=np.arange(1, len(rows) + 1))
        done = pd.concat([done, rows], ignore_index=True)
        done.to_csv(args.out, index=False)
        last = rows.iloc[-1]
        print(
            f"{setting}: val_ba {last['val_ba']:.3f} val_ra {last.get('val_ra', float('nan')):.3f} "
            f"({last['seconds_total']:.0f} s)",
            flush=True,
        )
    if args.md:
        with open(args.md, "w") as f:
            summary = convergence(done).to_markdown(index=False, floatfmt=".3f")
            f.write(("" if args.caption is None else args.caption + "\n\n") + summary + "\n\nEvery epoch:\n\n")
            f.write(to_markdown(done) + "\n")


if __name__ == "__main__":
    main()
