"""
Speed benchmark (issue: trainers; not a timed test): epoch time of art_ssl's TRADES and Gen-AF stage 1 against ART's
``AdversarialTrainerTRADESPyTorch`` on the same model, data and PGD steps, measured in one run; and Gen-AF's
regulariser overhead over plain PGD-AT (same PGD, same model).

    python evaluations/defence_speed.py --out evaluations/results/defence_speed.csv

Each trainer trains its own copy of the same classifier for ``--epochs`` epochs; the table gives seconds per epoch
(the mean over epochs after the first, or the only epoch) and images per second.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from art.attacks.evasion import ProjectedGradientDescent
from art.defences.trainer import AdversarialTrainerTRADESPyTorch

from art_ssl.data import load_task
from art_ssl.defences.trainer import FineTuningTrainer, GenAFTrainer, TRADESTrainer
from art_ssl.evaluation import build_victim
from art_ssl.zoo import load_encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="simclr_r18")
    parser.add_argument("--n", type=int, default=2048, help="training images")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--pgd-steps", type=int, default=10)
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--out", default="evaluations/results/defence_speed.csv")
    args = parser.parse_args()

    task = load_task("fashion_mnist", size=64, n_train=args.n, n_test=100)
    encoder = load_encoder(args.encoder, args.device)
    eps, step = 0.031, 0.007
    common = {
        "nb_epochs": args.epochs,
        "batch_size": args.batch_size,
        "pgd_steps": args.pgd_steps,
        "eps": eps,
        "step_size": step,
        "validation_pgd_steps": 0,
        "verbose": False,
    }

    def classifier():
        return build_victim(encoder, 10, seed=0, device_type=args.device)

    def run_ours(name, make):
        trainer = make(classifier())
        trainer.fit(task.x_train, task.y_train)
        seconds = trainer.history_["seconds"]
        per_epoch = seconds.iloc[1:].mean() if len(seconds) > 1 else seconds.iloc[0]
        return {"trainer": name, "seconds_per_epoch": float(per_epoch)}

    rows = [
        run_ours("art_ssl TRADESTrainer", lambda c: TRADESTrainer(c, **common)),
        run_ours("art_ssl GenAFTrainer (stage 1)", lambda c: GenAFTrainer(c, stages=(1,), **common)),
        run_ours("art_ssl FineTuningTrainer (PGD-AT)", lambda c: FineTuningTrainer(c, adversarial=True, **common)),
    ]
    art_clf = classifier()
    pgd = ProjectedGradientDescent(
        art_clf, eps=eps, eps_step=step, max_iter=args.pgd_steps, batch_size=args.batch_size, verbose=False
    )
    art_trainer = AdversarialTrainerTRADESPyTorch(art_clf, pgd, beta=6.0)
    times = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        art_trainer.fit(task.x_train, task.y_train, batch_size=args.batch_size, nb_epochs=1)
        times.append(time.perf_counter() - start)
    rows.append(
        {
            "trainer": "ART AdversarialTrainerTRADESPyTorch",
            "seconds_per_epoch": float(np.mean(times[1:] if len(times) > 1 else times)),
        }
    )

    table = pd.DataFrame(rows)
    table["images_per_s"] = args.n / table["seconds_per_epoch"]
    art_time = table["seconds_per_epoch"].iloc[-1]
    table["speedup_vs_art_trades"] = art_time / table["seconds_per_epoch"]
    pgd_at = table.loc[table.trainer.str.contains("PGD-AT"), "seconds_per_epoch"].item()
    table["overhead_vs_pgd_at"] = table["seconds_per_epoch"] / pgd_at - 1
    device = (
        torch.cuda.get_device_name()
        if args.device == "gpu" and torch.cuda.is_available()
        else (f"CPU {torch.get_num_threads()} threads ({platform.machine()})")
    )
    table["setting"] = (
        f"{args.encoder} + MLP head, {args.n} Fashion-MNIST images at 64x64, batch {args.batch_size}, "
        f"PGD-{args.pgd_steps}, {device}"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
