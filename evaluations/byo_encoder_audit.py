"""
End-to-end proof at the width users have: pre-train a full-width ResNet-18 (CIFAR stem, torchvision layout,
11.2M parameters) with our SimCLR on Fashion-MNIST at 32x32x3, save it with its metadata, and audit it with
``art-ssl audit`` exactly as a user would audit their own checkpoint. Timed on whatever CPU runs it.

    PYTHONPATH=. python evaluations/byo_encoder_audit.py              # resumable: re-run to continue
    PYTHONPATH=. python evaluations/byo_encoder_audit.py --n-pretrain 2000 --epochs 2

Pre-training reads the shipped Fashion-MNIST subset (5,000 train images; the full set is not installed here),
repeated to 3 channels. Results: evaluations/results/byo_resnet18_cifar/ (results.csv, report.md, timings.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "evaluations" / "results" / "byo_resnet18_cifar"
CKPT = ROOT / "evaluations" / "checkpoints" / "simclr_resnet18_cifar_fmnist32.safetensors"


def pretrain_stage(args, timings: dict) -> None:
    from art_ssl.data import load_task
    from art_ssl.models import build_encoder
    from art_ssl.ssl import pretrain
    from art_ssl.zoo.metadata import save_encoder

    if CKPT.exists():
        print(f"pre-trained encoder exists: {CKPT} (delete it to pre-train again)", flush=True)
        return
    task = load_task("fashion_mnist_subset", size=32, n_train=args.n_pretrain, seed=args.seed)
    x = np.repeat(task.x_train, 3, axis=1)  # grey -> RGB, as users with RGB encoders feed grey images
    torch.manual_seed(args.seed)
    encoder = build_encoder("resnet18_cifar", in_channels=3)
    start = time.perf_counter()
    result = pretrain(
        encoder,
        x,
        "simclr",
        nb_epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        device_type="cpu",
        verbose=True,
    )
    timings["pretrain_seconds"] = time.perf_counter() - start
    timings["pretrain_images"], timings["pretrain_epochs"] = int(len(x)), args.epochs
    timings["pretrain_final_loss"] = float(result.history["loss"].iloc[-1])
    save_encoder(
        result.encoder,
        CKPT,
        arch="resnet18_cifar",
        arch_kwargs={"in_channels": 3},
        input_shape=(3, 32, 32),
        method="simclr",
    )
    print(result.history.to_string(index=False), flush=True)


def audit_stage(args, timings: dict) -> int:
    # paths relative to the repository root (the command runs there), so the recorded results name no local folder
    command = [
        sys.executable,
        "-m",
        "art_ssl",
        "audit",
        "--encoder",
        str(CKPT.relative_to(ROOT)),
        "--data",
        "fashion-mnist-subset",
        "--size",
        "32",
        "--attacks",
        *args.attacks,
        "--defences",
        *args.defences,
        "--eps",
        "10",
        "--n-train",
        str(args.n_train),
        "--n-test",
        str(args.n_test),
        "--surrogate-n",
        str(args.surrogate_n),
        "--epochs",
        "1",
        "--gen-epochs",
        "1",
        "--sign-epochs",
        "1",
        "--whitebox-n",
        "50",
        "--batch-size",
        "128",
        "--device",
        "cpu",
        "--out",
        str(OUT.relative_to(ROOT)),
    ]
    timings["audit_command"] = " ".join(["art-ssl", *command[3:]])
    print("$", timings["audit_command"], flush=True)
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rc = subprocess.call(command, env=env, cwd=ROOT)
    timings["audit_seconds_last_run"] = time.perf_counter() - start
    timings["audit_rc"] = rc
    return rc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-pretrain", type=int, default=2000, help="pre-training images")
    parser.add_argument("--epochs", type=int, default=2, help="SimCLR epochs")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--n-train", type=int, default=1000, help="downstream training images")
    parser.add_argument("--n-test", type=int, default=500, help="downstream test images")
    parser.add_argument("--surrogate-n", type=int, default=500, help="attacker's unlabelled images")
    parser.add_argument("--attacks", nargs="+", default=["ssp", "pap_ugs", "advencoder"])
    parser.add_argument("--defences", nargs="+", default=["none"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stage", choices=["all", "pretrain", "audit"], default="all")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    timings_file = OUT / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    timings.update(
        cpu=platform.processor() or platform.machine(), torch_threads=torch.get_num_threads(), torch=torch.__version__
    )
    rc = 0
    if args.stage in ("all", "pretrain"):
        pretrain_stage(args, timings)
        timings_file.write_text(json.dumps(timings, indent=1))
    if args.stage in ("all", "audit"):
        rc = audit_stage(args, timings)
        timings_file.write_text(json.dumps(timings, indent=1))
    print(json.dumps(timings, indent=1))
    return rc


if __name__ == "__main__":
    sys.exit(main())
