"""
The tables quoted in the top-level README, rendered from the CSVs of one results folder:

- ``zoo``: the encoder zoo's linear probes (``zoo_probe.csv``, from ``probe_zoo.py``);
- ``attacks``: the range of RA over the zoo encoders per attack and task at eps 10/255 (``attacks_64.csv``);
- ``defences``: BA / mean RA over the DAEs per defence, encoder and task (``defences_64.csv``).

    python evaluations/readme_tables.py                                  # -> evaluations/results/readme_tables.md
    python evaluations/readme_tables.py --update-readme                  # and rewrite them in README.md
    python evaluations/readme_tables.py --results-dir evaluations/results/quick   # another run's tables

In README.md each table sits between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->``; ``--update-readme``
replaces only what is between those markers.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd
from attack_tables import RESULTS, read_rows
from defence_tables import wide

README = Path(__file__).resolve().parents[1] / "README.md"
METHODS = {"simclr": "SimCLR", "moco": "MoCo v2", "barlow_twins": "Barlow Twins", "byol": "BYOL", "simsiam": "SimSiam"}
ATTACK_COLUMNS = {
    "advencoder": "AdvEncoder",
    "ssp": "SSP",
    "pap_fuse": "PAP fuse",
    "pap_ugs": "PAP ugs",
    "pap_base": "PAP base",
    "uapepgd": "UAPEPGD",
    "art_uap": "ART UAP (surrogate head)",
}
TASKS = {"fashion_mnist": "Fashion-MNIST", "digits": "digits"}
DEFENCE_ROWS = {
    "none": "none (frozen encoder)",
    "finetune": "plain fine-tuning",
    "pgd_at": "PGD-AT",
    "trades": "TRADES",
    "mart": "MART",
    "genaf": "Gen-AF (both stages)",
}


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def zoo_table(results: Path) -> str:
    frame = pd.read_csv(results / "zoo_probe.csv").sort_values("probe_acc", ascending=False, kind="stable")
    rows = [
        [
            f"`{r.encoder}`",
            METHODS.get(r.method, r.method),
            str(r.epochs),
            str(r.seed),
            f"{r.train_minutes:.1f}",
            f"{r.probe_acc:.4f}",
            f"{r.probe_acc_5k:.4f}",
        ]
        for r in frame.itertuples()
    ]
    header = ["encoder", "method", "epochs", "seed", "CPU minutes", "probe, 60k train", "probe, 5k train"]
    return markdown(header, rows)


def attack_table(results: Path) -> str:
    frame = read_rows(results / "attacks_64.csv")
    frame = frame[frame.eps_255 == 10]
    ranges = frame.groupby(["task", "attack"])["RA"].agg(["min", "max"])
    rows = []
    for task, label in TASKS.items():
        rows.append(
            [label]
            + [
                f"{ranges.loc[(task, a), 'min']:.2f}-{ranges.loc[(task, a), 'max']:.2f}"
                if (task, a) in ranges.index
                else ""
                for a in ATTACK_COLUMNS
            ]
        )
    return markdown(["attack", *ATTACK_COLUMNS.values()], rows)


def _ba_ra(cell: pd.Series) -> str:
    """``BA / mean RA``; a model the grid marked degenerate shows why instead of an RA."""
    status = str(cell.get("status", "ok"))
    if status not in ("ok", "nan"):
        return f"{cell['BA']:.3f} / {status.split(':')[0]} ({status.split(': ', 1)[-1]})"
    return f"{cell['BA']:.3f} / {cell['RA_mean']:.3f}"


def defence_table(results: Path) -> str:
    frame = wide(pd.read_csv(results / "defences_64.csv"))
    dae = [c for c in frame.columns if c.startswith("RA_") and "autoattack" not in c]
    frame["RA_mean"] = frame[dae].mean(axis=1)
    present = set(zip(frame.encoder, frame.task, strict=True))
    columns = [(e, t) for t in TASKS for e in frame.encoder.unique() if (e, t) in present]
    cells = frame.set_index(["defence", "encoder", "task"])
    rows = []
    for defence, label in DEFENCE_ROWS.items():
        if defence not in frame.defence.values:
            continue
        rows.append(
            [label] + [_ba_ra(cells.loc[(defence, e, t)]) if (defence, e, t) in cells.index else "" for e, t in columns]
        )
    return markdown(["defence", *[f"{e}, {TASKS[t]}" for e, t in columns]], rows)


TABLES = {"zoo": zoo_table, "attacks": attack_table, "defences": defence_table}


def render(results: Path) -> dict[str, str]:
    """Each README table whose CSV is in ``results``, as markdown."""
    needs = {"zoo": "zoo_probe.csv", "attacks": "attacks_64.csv", "defences": "defences_64.csv"}
    return {name: make(results) for name, make in TABLES.items() if (results / needs[name]).exists()}


def update_readme(tables: dict[str, str], readme: Path = README) -> list[str]:
    """Replace each table between its markers in ``readme``; returns the names replaced."""
    text, done = readme.read_text(), []
    for name, table in tables.items():
        pattern = re.compile(rf"(<!-- table:{name} -->\n).*?(\n<!-- /table:{name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"{readme} has no <!-- table:{name} --> ... <!-- /table:{name} --> block")
        text = pattern.sub(lambda m, table=table: m.group(1) + table + m.group(2), text)
        done.append(name)
    readme.write_text(text)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", default=str(RESULTS), help="folder of the CSVs (default: %(default)s)")
    parser.add_argument("--update-readme", action="store_true", help="rewrite the tables in README.md")
    args = parser.parse_args()
    results = Path(args.results_dir)
    tables = render(results)
    text = "\n\n".join(f"<!-- table:{name} -->\n{table}\n<!-- /table:{name} -->" for name, table in tables.items())
    (results / "readme_tables.md").write_text(
        "Tables of the top-level README, from this folder's CSVs "
        "(`python evaluations/readme_tables.py`).\n\n" + text + "\n"
    )
    print(text)
    if args.update_readme:
        print("README.md: updated", ", ".join(update_readme(tables)))


if __name__ == "__main__":
    main()
