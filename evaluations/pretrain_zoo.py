"""
Pre-train one zoo encoder on the Fashion-MNIST training images at 64x64 (labels unused) and write its weights
(safetensors) and training record into the package's zoo.

    python evaluations/pretrain_zoo.py --name simclr_r18 --method simclr --epochs 10 --seed 0

The exact command of every shipped encoder is in evaluations/README.md and recorded in art_ssl/zoo/zoo.json.
Probe accuracies are measured afterwards by evaluations/probe_zoo.py.
"""

from __future__ import annotations

import argparse
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
from art_ssl.zoo import ZOO_ARCH, sha256_of

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
    args = parser.parse_args(argv)

    x, _ = load_fashion_mnist("train", size=args.size, root=args.root)
    torch.manual_seed(args.seed)
    encoder = build_encoder(ARCH, **ARCH_KWARGS)
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
        "data": f"Fashion-MNIST train (60,000 images, labels unused) at {args.size}x{args.size}",
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "optimizer": defaults["optimizer"],
        "lr": args.lr if args.lr is not None else defaults["lr"],
        "weight_decay": defaults["weight_decay"],
        "train_minutes": round(minutes, 1),
        "device": device,
        "torch": torch.__version__,
        "final_loss": round(float(result.history["loss"].iloc[-1]), 4),
        "command": "python evaluations/pretrain_zoo.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    meta_path = ZOO_DIR / "zoo.json"
    meta = json.loads(meta_path.read_text())
    meta[args.name] = {**meta.get(args.name, {}), **entry}
    meta_path.write_text(json.dumps(dict(sorted(meta.items())), indent=2) + "\n")
    result.history.to_csv(ROOT / "evaluations" / "results" / f"pretrain_{args.name}_history.csv", index=False)
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main()
