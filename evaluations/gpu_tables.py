"""
Tables of one GPU session (evaluations/gpu_session.sh): the per-epoch validation curves of the adversarial
fine-tuning defences, read back from the trainers' checkpoints (``curves_all_epochs.csv``), as markdown.

    python evaluations/gpu_tables.py evaluations/results/gpu_h200
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def curves_markdown(frame: pd.DataFrame) -> str:
    """One table per task: a row per epoch, ``val_ba / val_ra`` per setting (the head warm-start epochs, which
    have no validation, are left out)."""
    frame = frame.dropna(subset=["val_ba"])
    parts = []
    for task, rows in frame.groupby("task", sort=False):
        cells = rows.assign(cell=rows["val_ba"].map("{:.3f}".format) + " / " + rows["val_ra"].map("{:.3f}".format))
        table = cells.pivot_table(index="epoch", columns="setting", values="cell", aggfunc="first")
        parts.append(f"### {task}: val BA / val RA (white-box PGD-10 at the trainer's eps)\n\n" + table.to_markdown())
        last = rows.sort_values("epoch").groupby("setting").tail(2)
        change = last.groupby("setting")[["val_ba", "val_ra"]].agg(lambda s: abs(s.iloc[-1] - s.iloc[0]))
        parts.append("Change over the last two epochs:\n\n" + change.round(3).to_markdown())
    return "\n\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a GPU session's results (holding curves_all_epochs.csv)")
    args = parser.parse_args()
    folder = Path(args.folder)
    text = curves_markdown(pd.read_csv(folder / "curves_all_epochs.csv"))
    (folder / "curves.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
