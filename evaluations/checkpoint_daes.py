"""
BA and RA under the bench's DAEs of models saved by a trainer's checkpoints (``defence_curves.py --checkpoint-dir``):
what the per-epoch curves measure with a white-box PGD, measured under the threat model of the tables instead. Made
for Gen-AF's stage 2 (issue 16): its curves lose white-box RA epoch after epoch; does the DAE RA go with it?

    python evaluations/defence_curves.py --task fashion_mnist --encoder simclr_r18 --n-train 4000 --n-val 2000 \
        --epochs 30 --threads 1 --stages 1 2 --sensitivity-samples 1000 --sensitivity-epochs 3 \
        --settings genaf:sum:lamauto:random:ms27:st2e10 --checkpoint-dir CKPT --out curves.csv
    python evaluations/checkpoint_daes.py --preset defences_30epochs_64 --encoder simclr_r18 \
        --checkpoint "stage 1=CKPT/genaf_sum_lamauto_random_ms27_st2e10/GenAFTrainer-stage-1.pt" \
        --checkpoint "stage 2=CKPT/genaf_sum_lamauto_random_ms27_st2e10/GenAFTrainer-stage-2.pt" --out daes.csv

The DAEs are the preset's (:func:`art_ssl.evaluation.work.learn_perturbation`: the attacker's images, attacks and
settings of the grid, so the perturbations the grid's cells face); the test images are the preset's first task's
(``n_test`` of them, seed 0: the validation images of ``defence_curves.py --n-val`` with the same count). A
checkpoint holds the model after its loop's last finished epoch (its ``history`` says which; a column here).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from presets import preset_grids

from art_ssl import metrics
from art_ssl.data import load_task
from art_ssl.evaluation import build_victim
from art_ssl.evaluation.threat import apply_perturbation
from art_ssl.evaluation.work import learn_perturbation
from art_ssl.zoo import load_encoder


def accuracy(classifier, x: np.ndarray, y: np.ndarray) -> float:
    """The project's accuracy on the model's scores (refuses NaN scores instead of reading class 0 from them)."""
    return metrics.accuracy(classifier.predict(x, batch_size=256), y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="defences_30epochs_64")
    parser.add_argument("--encoder", default="simclr_r18", help="the public encoder the models were trained from")
    parser.add_argument("--checkpoint", action="append", required=True, metavar="LABEL=FILE")
    parser.add_argument("--root", default=None, help="Fashion-MNIST IDX folder")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--md", default=None)
    parser.add_argument("--caption", default=None)
    args = parser.parse_args()
    checkpoints = []
    for item in args.checkpoint:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            parser.error(f"--checkpoint takes LABEL=FILE, got {item!r}")
        checkpoints.append((label, path))
    if args.threads:
        torch.set_num_threads(args.threads)
    config = preset_grids(args.preset, encoders=(args.encoder,))[0]
    task_name = config.tasks[0].replace("-", "_")
    task = load_task(task_name, size=config.size, n_train=config.n_train, n_test=config.n_test, seed=0, root=args.root)
    public = load_encoder(args.encoder, "cpu")
    daes = {}
    for attack in config.attacks:
        start = time.perf_counter()
        daes[attack] = learn_perturbation(config, args.encoder, attack, config.eps[0], 0)["noise"]
        print(f"{attack}: crafted in {time.perf_counter() - start:.0f} s", flush=True)
    rows = []
    for label, path in checkpoints:
        state = torch.load(path, map_location="cpu", weights_only=True)
        classifier = build_victim(public, task.nb_classes, seed=0)
        classifier.model.load_state_dict(state["model"])
        classifier.model.eval()
        last = state["history"][-1]
        row = {"model": label, "stage": last.get("stage", ""), "epochs": last["epoch"]}
        row["BA"] = accuracy(classifier, task.x_test, task.y_test)
        for attack, noise in daes.items():
            row[f"RA_{attack}"] = accuracy(classifier, apply_perturbation(task.x_test, noise), task.y_test)
        row["val_ra_whitebox"] = last.get("val_ra", np.nan)  # the curve's own white-box PGD accuracy at that epoch
        rows.append(row)
        print(row, flush=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(args.out, index=False)
    if args.md:
        with open(args.md, "w") as f:
            f.write("" if args.caption is None else args.caption + "\n\n")
            f.write(frame.to_markdown(index=False, floatfmt=".3f") + "\n")


if __name__ == "__main__":
    main()
