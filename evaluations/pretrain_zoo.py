"""
Pre-train one zoo encoder on the Fashion-MNIST training images at 64x64 (labels unused) and write its weights
(safetensors) and training record into the package's zoo.

    python evaluations/pretrain_zoo.py --name simclr_r18 --method simclr --epochs 10 --seed 0

``--minutes M`` fits the run to a wall-clock budget: a short timed run of the same method on the same device first
(``--probe-steps`` steps, not kept), then the largest epoch count (at most ``--epochs``) expected to fit in ``M``
minutes; the recorded command names the epochs chosen, so the run can be repeated without the budget.

The exact command of every shipped encoder is in evaluations/README.md and recorded in art_ssl/zoo/zoo.json.
Probe accuracies are measured afterwards by evaluations/probe_zoo.py.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from art_ssl.data import load_fashion_mnist
from art_ssl.models import build_encoder
from art_ssl.ssl import OPTIMIZER_DEFAULTS, pretrain
from art_ssl.zoo import ZOO_ARCH, sha256_of, update_index

ROOT = Path(__file__).resolve().parents[1]
ZOO_DIR = ROOT / "art_ssl" / "zoo"
ARCH, ARCH_KWARGS = ZOO_ARCH


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True)
    parser.add_argument("--method", required=True, choices=sorted(OPTIMIZER_DEFAULTS))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--device", default="gpu", choices=["gpu", "cpu"])
    parser.add_argument("--root", default=None, help="Fashion-MNIST IDX folder (default: the Debian package's)")
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock budget; picks the epoch count")
    parser.add_argument("--probe-steps", type=int, default=30, help="timed steps behind --minutes")
    parser.add_argument("--n-images", type=int, default=0, help="train on the first N images only (0: all)")
    parser.add_argument(
        "--augmentation",
        default="kornia",
        choices=["kornia", "batched"],
        help="the views' implementation (art_ssl.ssl.ssl_augmentation); the shipped zoo used kornia",
    )
    parser.add_argument("--checkpoint-dir", default=None, help="resumable training state (pretrain checkpoint_dir)")
    args = parser.parse_args(argv)
    argv_used = list(sys.argv[1:] if argv is None else argv)

    x, _ = load_fashion_mnist("train", size=args.size, root=args.root)
    if args.n_images:
        x = x[: args.n_images]
    torch.manual_seed(args.seed)
    encoder = build_encoder(ARCH, **ARCH_KWARGS)
    if args.minutes is not None:
        args.epochs = epochs_within(args, encoder, x)
        argv_used = _drop_options(argv_used, ("--minutes", "--probe-steps"))
        argv_used = _set_option(argv_used, "--epochs", str(args.epochs))
    ckpt_dir = ROOT / "evaluations" / "checkpoints"
    ckpt_dir.mkdir(exist_ok=True)

    def checkpoint(epoch, model, history):
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
            str(ckpt_dir / f"{args.name}_epoch{epoch}.safetensors"),
        )
        history.to_csv(ckpt_dir / f"{args.name}_history.csv", index=False)

    start = time.perf_counter()
    result = pretrain(
        encoder,
        x,
        method=args.method,
        nb_epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device_type=args.device,
        augmentation=args.augmentation,
        epoch_callback=checkpoint,
    )
    minutes = (time.perf_counter() - start) / 60

    weights = ZOO_DIR / "weights" / f"{args.name}.safetensors"
    weights.parent.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in result.encoder.state_dict().items()}, str(weights))
    device = (
        torch.cuda.get_device_name()
        if args.device == "gpu" and torch.cuda.is_available()
        else (f"CPU ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})")
    )
    defaults = OPTIMIZER_DEFAULTS[args.method]
    entry = {
        "method": args.method,
        "arch": ARCH,
        "arch_kwargs": ARCH_KWARGS,
        "input_shape": [1, args.size, args.size],
        "file": weights.name,
        "sha256": sha256_of(weights),
        "size_mb": round(weights.stat().st_size / 1e6, 2),
        "params": sum(p.numel() for p in result.encoder.parameters()),
        "data": f"Fashion-MNIST train ({len(x):,} images, labels unused) at {args.size}x{args.size}",
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "optimizer": defaults["optimizer"],
        "lr": args.lr if args.lr is not None else defaults["lr"],
        "weight_decay": defaults["weight_decay"],
        "train_minutes": round(minutes, 1),
        "device": device,
        "torch": torch.__version__,
        "augmentation": args.augmentation,
        "final_loss": round(float(result.history["loss"].iloc[-1]), 4),
        "command": "python evaluations/pretrain_zoo.py " + " ".join(argv_used),
    }
    if args.minutes is not None:
        entry["epochs_from_budget"] = f"{args.minutes:g} minutes"
    # an old probe is not this encoder's: probe_zoo.py measures it again
    update_index(args.name, entry, keep=lambda key: not key.startswith(("probe_", "raw_pixel")))
    result.history.to_csv(ROOT / "evaluations" / "results" / f"pretrain_{args.name}_history.csv", index=False)
    print(json.dumps(entry, indent=2))


def epochs_within(args, encoder: torch.nn.Module, x) -> int:
    """Largest epoch count (1 to ``args.epochs``) whose expected time fits ``args.minutes``, from a timed run of
    ``args.probe_steps`` steps of the same method, batch and device on a copy of ``encoder``."""
    n = min(len(x), args.batch_size * (args.probe_steps + 5))
    warm = args.batch_size * 5  # the first steps pay for kernel selection and allocation; not timed
    trial = copy.deepcopy(encoder)
    pretrain(
        trial,
        x[:warm],
        method=args.method,
        nb_epochs=1,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device_type=args.device,
        augmentation=args.augmentation,
        verbose=False,
    )
    start = time.perf_counter()
    pretrain(
        trial,
        x[warm:n],
        method=args.method,
        nb_epochs=1,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device_type=args.device,
        augmentation=args.augmentation,
        verbose=False,
    )
    per_step = (time.perf_counter() - start) / ((n - warm) // args.batch_size)
    per_epoch = per_step * (len(x) // args.batch_size)
    epochs = max(1, min(args.epochs, int(args.minutes * 60 * 0.9 / per_epoch)))
    print(f"{args.name}: {per_step * 1000:.1f} ms/step, {per_epoch:.1f} s/epoch -> {epochs} epochs", flush=True)
    return epochs


def _drop_options(argv: list[str], names: tuple[str, ...]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in names:
            skip = True
        elif not a.startswith(tuple(f"{n}=" for n in names)):
            out.append(a)
    return out


def _set_option(argv: list[str], name: str, value: str) -> list[str]:
    return [*_drop_options(argv, (name,)), name, value]


if __name__ == "__main__":
    main()
