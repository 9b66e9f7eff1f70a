"""
Markdown tables from the defence evaluation's CSVs (``defence_eval.py``), written next to them:

    python evaluations/defence_tables.py

- ``defences_64.md``: BA, RA under each DAE (crafted on the public encoder, eps 10/255) and under AutoAttack, per
  encoder, task and defence;
- ``defences_curve_64.md``: RA against the DAE budget for no defence and the best defence.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
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


def write(name: str, title: str, table: pd.DataFrame) -> None:
    text = f"{title}\n\n{table.to_markdown(index=False, floatfmt='.3f')}\n"
    (RESULTS / name).write_text(text)
    print(text)


def main() -> None:
    main_csv = RESULTS / "defences_64.csv"
    if main_csv.exists():
        frame = pd.read_csv(main_csv)
        first = frame.iloc[0]
        write("defences_64.md",
              "Defences against DAEs crafted on the public encoder (5,000 unlabelled Fashion-MNIST images, eps "
              "10/255), "
              f"64x64; downstream: {int(first.n_train)} training images (digits: all 1,257), test "
              f"{int(first.n_test)} (digits: 540); {int(first.epochs)} epochs, PGD-{int(first.pgd_steps)}; AutoAttack "
              "(pyautoattack standard, eps 2/255) on the first 100 test images of the first encoder's Fashion-MNIST "
              "victims. Command: `python evaluations/defence_eval.py`", tidy(frame))  # fmt: skip
    curve_csv = RESULTS / "defences_curve_64.csv"
    if curve_csv.exists():
        write("defences_curve_64.md",
              "RA against the DAE budget (1/255 units in the column names). Command: `python evaluations/"
              "defence_eval.py --encoders simclr_r18 --defences none genaf --eps 4 8 10 16 --aa-n 0 "
              "--out evaluations/results/defences_curve_64.csv`", tidy(pd.read_csv(curve_csv)))  # fmt: skip


if __name__ == "__main__":
    main()
