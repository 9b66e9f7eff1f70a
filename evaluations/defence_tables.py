"""
Markdown tables from the defence presets' CSVs (``run_preset.py defences_*``), written next to them:

    python evaluations/defence_tables.py

- ``defences_64.md``: BA, RA under each DAE (crafted on the public encoder, eps 10/255) and under AutoAttack, per
  encoder, task and defence;
- ``defences_curve_64.md``: RA against the DAE budget for no defence and the best defence (TRADES);
- ``defence_speed.md``: epoch times of our TRADES, Gen-AF and PGD-AT against ART's TRADES trainer;
- ``defences_sources_64.md``: RA under standard, transfer and adaptive DAEs;
- ``defences_10epochs_64.md``: Fashion-MNIST at 10 epochs;
- ``defences_digits_30epochs_64.md``: digits at 30 epochs;
- ``defences_30epochs_64.md``: Fashion-MNIST at 30 epochs, the last 3 annealed (the converged budget);
- ``defences_digits_30epochs_anneal_64.md``: digits at the same budget;
- ``defences_digits_3epochs_64.md``: the first digits run, at the Fashion-MNIST epochs (15 optimisation steps).
"""

from __future__ import annotations

import pandas as pd
from attack_tables import results_dir, write

DEFENCES = ["none", "finetune", "pgd_at", "trades", "mart", "genaf"]


def wide(frame: pd.DataFrame) -> pd.DataFrame:
    """A grid's rows (``run_preset.py``: one per model and attack) as one row per model: ``BA``,
    ``RA_<attack>_eps<eps>`` (``transfer:``/``adaptive:`` attacks as ``RA_transfer_<attack>...``) and the training
    seconds; one row per seed too where the rows hold several. Tables written before the grid (one row per model
    already) pass through."""
    if "attack" not in frame.columns:
        return frame
    frame = frame.copy()
    frame["task"] = frame["task"].str.replace("-", "_")
    frame["column"] = [
        f"RA_{str(a).replace(':', '_')}_eps{e:g}" for a, e in zip(frame.attack, frame.eps_255, strict=True)
    ]
    index = ["encoder", "task", "defence", *(["seed"] if frame.get("seed", pd.Series()).nunique() > 1 else [])]
    models = frame.groupby(index, sort=False)[["BA", "train_seconds"]].first()
    # a model the grid marked degenerate (e.g. a constant predictor) keeps its BA and says so; its RAs stay empty
    statuses = frame["status"].astype(str)
    models["status"] = statuses.where(statuses.ne("ok")).groupby([frame[i] for i in index], sort=False).first()
    models["status"] = models["status"].fillna("ok").str.split(" \\(").str[0]
    ok = frame[statuses.eq("ok")]
    ra = ok.pivot_table(index=index, columns="column", values="RA", aggfunc="first")
    return pd.concat([models, ra], axis=1).reset_index()


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    frame = wide(frame)
    frame["defence"] = pd.Categorical(frame["defence"], DEFENCES)
    ra = [c for c in frame.columns if c.startswith("RA_")]
    dae = [c for c in ra if "autoattack" not in c and "_transfer_" not in c and "_adaptive_" not in c]
    frame["RA_mean_DAE"] = frame[dae].mean(axis=1)
    seeds = ["seed"] if "seed" in frame.columns else []
    keep = ["encoder", "task", "defence", *seeds, "BA", *dae, "RA_mean_DAE", *sorted(c for c in ra if c not in dae)]
    keep += [c for c in ("train_seconds", "status") if c in frame.columns]
    return frame.sort_values(["encoder", "task", "defence", *seeds])[keep]


# (CSV, tidy it, caption) of each table; a table whose CSV is missing is skipped.
TABLES = [
    (
        "defences_64.csv",
        True,
        "Defences against DAEs crafted on the public encoder (5,000 unlabelled Fashion-MNIST images, eps "
        "10/255), 64x64. Downstream: Fashion-MNIST 4,000 training / 2,000 test images, 3 epochs; digits all "
        "1,257 / 540, 10 epochs (about the same number of steps); PGD-5 inside the trainers. AutoAttack "
        "(pyautoattack standard, eps 2/255) on the first 40 test images of the simclr_r18 Fashion-MNIST "
        "victims. Command: `python evaluations/run_preset.py defences_64` (the audit grid; preset in "
        "`evaluations/presets.py`)",
    ),
    (
        "defences_curve_64.csv",
        True,
        "RA against the DAE budget (1/255 units in the column names), no defence and TRADES, simclr_r18, "
        "Fashion-MNIST, the budget of defences_64. Command: `python evaluations/run_preset.py defences_curve_64`",
    ),
    (
        "defences_sources_64.csv",
        True,
        "Where the DAE is crafted: on the public encoder (standard, the papers' threat model), on another clean "
        "zoo encoder (`RA_transfer_*`: the attacker does not know which encoder the victim fine-tuned) and on the "
        "defended model's own encoder (`RA_adaptive_*`: the attacker knows the defence), simclr_r18, "
        "Fashion-MNIST, the budget of defences_64. Command: `python evaluations/run_preset.py defences_sources_64`",
    ),
    (
        "defences_10epochs_64.csv",
        True,
        "The defences_64 protocol on Fashion-MNIST with 10 training epochs instead of 3 (160 optimiser steps "
        "instead of 48; each defence's defaults otherwise). Command: `python evaluations/run_preset.py "
        "defences_10epochs_64`",
    ),
    (
        "defences_digits_30epochs_64.csv",
        True,
        "The defences_64 protocol on digits with 30 training epochs instead of 10 (1,257 images make 5 batches "
        "an epoch: 150 optimiser steps instead of 50, about Fashion-MNIST's 160 at 10 epochs; each defence's "
        "defaults otherwise), against defences_64's DAEs (crafted from 5,000 Fashion-MNIST images: the preset's "
        "`surrogate_data`). 540 test images: one image is 0.19 points. Command: `python evaluations/run_preset.py "
        "defences_digits_30epochs_64` (run here as two processes, `--encoders simclr_r18` and `--encoders "
        "barlow_twins_r18` with their own `--out-dir`, 29.6 and 30.4 min on one thread each, rows then put in one "
        "file); seed 1 (the DAEs' images, the DAEs and the training all drawn again) by the same commands with "
        "`--seeds 1` (29.7 and 30.3 min)",
    ),
    (
        "defences_30epochs_64.csv",
        True,
        "The bench at the budget where the curves converge (issue 16's rule, bench_curves_fmnist_30_anneal.md): "
        "the defences_64 protocol on Fashion-MNIST with 30 training epochs (480 optimiser steps), the last 3 at "
        "0.1x the learning rates (`anneal_epochs=3`, TRADES' and MART's step decay; Gen-AF's 2-epoch stage 2 "
        "without it), the undefended head trained 30 epochs. Command: `python evaluations/run_preset.py "
        "defences_30epochs_64` (run here as two processes, `--encoders simclr_r18` and `--encoders "
        "barlow_twins_r18` with their own `--out-dir`, one thread each, over two sessions: the grid resumed at "
        "the first unfinished model; rows then put in one file)",
    ),
    (
        "defences_digits_30epochs_anneal_64.csv",
        True,
        "digits at the converged budget of defences_30epochs_64: 30 epochs (150 optimiser steps), the last 3 at "
        "0.1x the learning rates (`anneal_epochs=3`; bench_curves_digits_30_anneal.md), against defences_64's "
        "Fashion-MNIST-crafted DAEs. 540 test images: one image is 0.19 points. Command: `python "
        "evaluations/run_preset.py defences_digits_30epochs_anneal_64` (run here as two processes, `--encoders "
        "simclr_r18` and `--encoders barlow_twins_r18` with their own `--out-dir`, 26.4 and 26.6 min on one thread "
        "each; rows then put in one file)",
    ),
    (
        "defence_speed.csv",
        False,
        "Seconds per training epoch, each trainer on its own copy of the same model and data, one run "
        "(mean over the epochs after the first). Command: `python evaluations/defence_speed.py --epochs 2 "
        "--pgd-steps 10`",
    ),
    (
        "defences_digits_3epochs_64.csv",
        True,
        "The first digits run, at Fashion-MNIST's 3 epochs: 1,257 images make 5 batches an epoch, 15 steps in "
        "all, and PGD-AT, MART and Gen-AF stay near chance (BA 0.10-0.32; each defence's current defaults, budget "
        "warm-ups included). Its DAEs were crafted from digits images (a grid's first task, before `surrogate_data`), "
        "not defences_64's Fashion-MNIST ones. Superseded by the 10-epoch rows of defences_64.md. "
        "Command: `python evaluations/run_preset.py defences_digits_3epochs_64`",
    ),
]


def main() -> None:
    results = results_dir(__doc__)
    for csv, tidy_it, caption in TABLES:
        path = results / csv
        if path.exists():
            frame = pd.read_csv(path)
            write(path.with_suffix(".md"), caption, tidy(frame) if tidy_it else frame)


if __name__ == "__main__":
    main()
