"""
Inference cost of ZePAD's three-branch model (two MPAE encoders + heads, the BMP encoder + head, federal fusion)
against one encoder + head (issue: ZePAD). Cost does not depend on the weights, so both are built from the zoo
encoders with fresh heads. Each model is measured in its own child process so that peak memory is its own:
parameters, latency of one image and of a batch, throughput, and the peak resident memory a batch's forward adds
(CPU; on CUDA ``torch.cuda.max_memory_allocated``).

    python evaluations/zepad_cost.py --out evaluations/results/zepad_cost.csv
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from art_ssl.core.modes import evaluating
from art_ssl.defences.trainer import ZePADModel
from art_ssl.estimators import EncoderWithHead
from art_ssl.models import MLPHead
from art_ssl.zoo import load_encoder

MODELS = ("single", "zepad")


def build(kind: str, encoders: list[str], device: str) -> nn.Module:
    def branch(name: str) -> nn.Module:
        encoder = load_encoder(name, device)
        return EncoderWithHead(encoder.model, MLPHead(encoder.embedding_dim, 10, dropout=0.2))

    if kind == "single":
        return branch(encoders[0])
    return ZePADModel([branch(encoders[0]), branch(encoders[1])], branch(encoders[0]), fusion="federal")


def measure(kind: str, args) -> dict:
    # ART's convention: "gpu" runs on the CPU when CUDA is absent (reproduce.py's full profile, proved on a CPU)
    gpu = args.device == "gpu" and torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    torch.manual_seed(0)
    model = build(kind, args.encoders, "gpu" if gpu else "cpu").to(device).eval()
    x = torch.rand((args.batch_size, 1, 64, 64), device=device)

    def timed(batch: torch.Tensor, repeats: int) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    with evaluating(model), torch.inference_mode():
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        model(x)  # warm-up, and the peak of one batch
        peak_mb = (
            torch.cuda.max_memory_allocated() / 2**20
            if device.type == "cuda"
            else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        )
        batch_s = timed(x, args.repeats)
        single_s = timed(x[:1], args.repeats * 5)
    params = sum(p.numel() for p in model.parameters())
    return {
        "model": kind,
        "parameters_M": params / 1e6,
        "parameter_MB": params * 4 / 2**20,
        f"batch{args.batch_size}_ms": batch_s * 1e3,
        "one_image_ms": single_s * 1e3,
        "images_per_s": args.batch_size / batch_s,
        "peak_forward_MB": peak_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--encoders",
        nargs=2,
        default=["simclr_r18", "barlow_twins_r18"],
        help="victim (MPAE and BMP) and auxiliary (MPAE) encoders",
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--measure", choices=MODELS, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--out", default="evaluations/results/zepad_cost.csv")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args)))
        return
    rows = []
    for kind in MODELS:
        child = [
            sys.executable,
            __file__,
            "--measure",
            kind,
            "--batch-size",
            str(args.batch_size),
            "--repeats",
            str(args.repeats),
            "--device",
            args.device,
            "--encoders",
            *args.encoders,
        ]
        result = subprocess.run(child, check=True, capture_output=True, text=True)
        rows.append(json.loads(result.stdout.splitlines()[-1]))
    table = pd.DataFrame(rows)
    ratio = table.set_index("model").loc["zepad"] / table.set_index("model").loc["single"]
    table = pd.concat([table, pd.DataFrame([{"model": "zepad / single", **ratio.to_dict()}])], ignore_index=True)
    machine = (
        torch.cuda.get_device_name()
        if args.device == "gpu" and torch.cuda.is_available()
        else f"CPU {torch.get_num_threads()} threads ({platform.machine()})"
    )
    table["setting"] = f"{args.encoders[0]} (+ {args.encoders[1]}) with MLP heads, 64x64, {machine}"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    text = (
        "Inference cost of the three-branch ZePAD model against one encoder + head. Command: "
        f"`python evaluations/zepad_cost.py`\n\n{table.to_markdown(index=False, floatfmt='.3g')}\n"
    )
    Path(args.out).with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
