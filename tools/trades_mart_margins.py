"""
The margins behind ``tests/defences/test_trades_mart_raise_ra.py``: its exact setting (imported from it) over several
seeds (the seed picks the fine-tuning slice of 512 images and the trainers' seed); prints BA / RA of plain
fine-tuning, TRADES and MART and the RA gains, as a markdown table.

    PYTHONPATH=. python tools/trades_mart_margins.py            # seeds 0-4
    PYTHONPATH=. python tools/trades_mart_margins.py --seeds 8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.defences.test_trades_mart_raise_ra import accuracies, base_classifier, data, fine_tuned  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="Seeds 0..N-1.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: stable timing on a shared CPU).")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    task = data()
    base = base_classifier(task)
    print(f"base: BA / RA {accuracies(base, task)}")
    print("| seed | plain BA | plain RA | TRADES BA | TRADES RA | MART BA | MART RA | TRADES gain | MART gain |")
    print("|---|---|---|---|---|---|---|---|---|")
    for seed in range(args.seeds):
        row = {name: accuracies(fine_tuned(name, base, task, seed), task) for name in ("finetune", "trades", "mart")}
        (pb, pr), (tb, tr), (mb, mr) = row["finetune"], row["trades"], row["mart"]
        cells = [pb, pr, tb, tr, mb, mr, tr - pr, mr - pr]
        print(f"| {seed} | " + " | ".join(f"{v:.3f}" for v in cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
