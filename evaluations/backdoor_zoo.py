"""
Plant a BadEncoder backdoor in a zoo encoder and ship the result in the zoo, with its targets and triggers recorded.

    python evaluations/backdoor_zoo.py                 # simclr_r18 -> simclr_r18_badencoder (defaults below)

Two targets, one trigger each (BadEncoder's multi-target attack): a Fashion-MNIST class (white square, bottom-right)
and a digits class (white square, bottom-left), both squares scaled from BadEncoder's 10 px at 32 px (20 px with a
2 px margin at 64x64). Each target's reference input is the training image of the class whose clean embedding is
closest to the class's mean embedding (a typical image of the class; the attacker needs a few labelled images of
the target class, as in the paper). Shadow data: a seeded subset of the Fashion-MNIST training images (the
pre-training data), labels unused. SGD momentum 0.9, weight decay 5e-4, lambda1 = lambda2 = 1, BatchNorm frozen
(official); the learning rate and epochs are our CPU budget (official: 1e-3 for 200 epochs on 50,000 images).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from art_ssl.attacks.poisoning import BadEncoder, square_trigger
from art_ssl.data import load_task, subsample
from art_ssl.zoo import encoder_info, load_encoder, sha256_of, update_index

ROOT = Path(__file__).resolve().parents[1]
ZOO_DIR = ROOT / "art_ssl" / "zoo"


def typical_index(encoder, x: np.ndarray, y: np.ndarray, target: int) -> int:
    """Index (into ``x``) of the target-class image whose embedding is closest (cosine) to the class mean."""
    idx = np.flatnonzero(y == target)
    emb = encoder.predict(x[idx], batch_size=256)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    mean = emb.mean(0)
    return int(idx[np.argmax(emb @ mean)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="simclr_r18", help="clean zoo encoder to backdoor")
    parser.add_argument("--name", default="simclr_r18_badencoder")
    parser.add_argument("--fmnist-target", type=int, default=9, help="Fashion-MNIST target class (9: Ankle boot)")
    parser.add_argument("--digits-target", type=int, default=1, help="digits target class")
    parser.add_argument("--n-shadow", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="gpu", choices=["gpu", "cpu"])
    args = parser.parse_args(argv)

    clean = load_encoder(args.base, device_type=args.device)
    size = clean.input_shape[-1]
    fmnist, digits = load_task("fashion_mnist", size=size), load_task("digits", size=size, seed=args.seed)
    x_shadow, _ = subsample(fmnist.x_train, fmnist.y_train, args.n_shadow, seed=args.seed + 2)
    targets = [
        ("fashion_mnist", fmnist, args.fmnist_target, "bottom_right"),
        ("digits", digits, args.digits_target, "bottom_left"),
    ]
    refs, triggers, records = [], [], []
    for task_name, task, target, corner in targets:
        i = typical_index(clean, task.x_train, task.y_train, target)
        trigger = square_trigger(tuple(clean.input_shape), corner=corner)
        refs.append(task.x_train[i : i + 1])
        triggers.append(trigger)
        rows, cols = np.nonzero(trigger.mask[0])
        records.append(
            {
                "task": task_name,
                "target": target,
                "reference": {
                    "split": "train",
                    "index": i,
                    "loader": f"load_task({task_name!r}, size={size}"
                    + (f", seed={args.seed})" if task_name == "digits" else ")"),
                },
                "trigger": {
                    "kind": "square",
                    "corner": corner,
                    "size": int(rows.max() - rows.min() + 1),
                    "margin": int(size - 1 - rows.max()) if corner.startswith("bottom") else int(rows.min()),
                    "value": 1.0,
                },
            }
        )
    attack = BadEncoder(
        clean,
        reference_inputs=refs,
        trigger=triggers,
        target=[t[2] for t in targets],
        learning_rate=args.lr,
        nb_epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        verbose=True,
    )
    start = time.perf_counter()
    backdoored = attack.poison_estimator(x_shadow)
    minutes = (time.perf_counter() - start) / 60

    weights = ZOO_DIR / "weights" / f"{args.name}.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in backdoored.model.state_dict().items()}, str(weights))
    base = encoder_info(args.base)
    device = (
        torch.cuda.get_device_name()
        if args.device == "gpu" and torch.cuda.is_available()
        else (f"CPU ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})")
    )
    entry = {
        "method": "badencoder",
        "backdoored": True,
        "base_encoder": args.base,
        "arch": base["arch"],
        "arch_kwargs": base["arch_kwargs"],
        "input_shape": base["input_shape"],
        "file": weights.name,
        "sha256": sha256_of(weights),
        "size_mb": round(weights.stat().st_size / 1e6, 2),
        "params": base["params"],
        "data": f"shadow data: {args.n_shadow} Fashion-MNIST training images (class-balanced, seed {args.seed + 2}), "
        f"labels unused, {size}x{size}",
        "backdoor_targets": records,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "optimizer": "sgd",
        "lr": args.lr,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "lambda1": 1.0,
        "lambda2": 1.0,
        "train_minutes": round(minutes, 1),
        "device": device,
        "torch": torch.__version__,
        "final_loss": round(float(attack.history_["loss"].iloc[-1]), 4),
        "command": "python evaluations/backdoor_zoo.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    update_index(args.name, entry, keep=lambda key: False)
    attack.history_.to_csv(ROOT / "evaluations" / "results" / f"backdoor_{args.name}_history.csv", index=False)
    print(attack.history_.round(4).to_string(index=False))
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main()
