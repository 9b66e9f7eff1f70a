"""
Markdown tables from the defence evaluation's CSVs (``defence_eval.py``), written next to them:

    python evaluations/defence_tables.py

- ``defences_64.md``: BA, RA under each DAE (crafted on the public encoder, eps 10/255) and under AutoAttack, per
  encoder, task and defence;
- ``defences_curve_64.md``: RA against the DAE budget for no defence and the best defence (TRADES);
- ``defence_speed.md``: epoch times of our TRADES, Gen-AF and PGD-AT against ART's TRADES trainer;
- ``defences_genaf_epochs_64.md``: Gen-AF with a longer stage 1 (10 epochs), next to the main table's 3;
- ``defences_digits_3epochs_64.md``: the first digits run, at the Fashion-MNIST epochs (15 optimisation steps).
"""

from __future__ import annotations

import pandas as pd
from attack_tables import results_dir, write

DEFENCES = ["none", "finetune", "pgd_at", "trades", "mart", "genaf"]


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["defence"] = pd.Categorical(frame["defence"], DEFENCES)
    ra = [c for c in frame.columns if c.startswith("RA_")]
    dae = [c for c in ra if "autoattack" not in c]
    frame["RA_mean_DAE"] = frame[dae].mean(axis=1)
    keep = ["encoder", "task", "defence", "BA", *dae, "RA_mean_DAE", *[c for c in ra if c not in dae]]
    keep += [c for c in ("train_seconds",) if c in frame.columns]
    return frame.sort_values(["encoder", "task", "defence"])[keep]


# (CSV, tidy it, caption) of each table; a table whose CSV is missing is skipped.
TABLES = [
    (
        "defences_64.csv",
        True,
        "Defences against DAEs crafted on the public encoder (5,000 unlabelled Fashion-MNIST images, eps "
        "10/255), 64x64. Downstream: Fashion-MNIST 4,000 training / 2,000 test images, 3 epochs; digits all "
        "1,257 / 540, 10 epochs (about the same number of steps); PGD-5 inside the trainers. AutoAttack "
        "(pyautoattack standard, eps 2/255) on the first 40 test images of the simclr_r18 Fashion-MNIST "
        "victims. Commands: `python evaluations/defence_eval.py --epochs 3 --n-train 4000 --aa-n 40`",
    ),
    (
        "defences_curve_64.csv",
        True,
        "RA against the DAE budget (1/255 units in the column names), no defence and TRADES, simclr_r18, "
        "Fashion-MNIST. Command: `python evaluations/defence_eval.py --encoders simclr_r18 --tasks "
        "fashion_mnist --defences none trades --eps 4 8 10 16 --epochs 3 --n-train 4000 --aa-n 0 "
        "--out evaluations/results/defences_curve_64.csv`",
    ),
    (
        "defences_genaf_epochs_64.csv",
        True,
        "Gen-AF with 10 stage-1 epochs (the main table: 3), simclr_r18, Fashion-MNIST. Command: `python "
        "evaluations/defence_eval.py --encoders simclr_r18 --tasks fashion_mnist --defences genaf --epochs 10 "
        "--n-train 4000 --aa-n 0 --out evaluations/results/defences_genaf_epochs_64.csv`",
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
        "all, and PGD-AT, MART and Gen-AF stay at chance. Superseded by the 10-epoch rows of defences_64.md.",
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
