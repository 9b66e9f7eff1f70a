"""
Speed of the two implementations of the SSL views (a benchmark, not a timed test): kornia (the reference) against
:class:`art_ssl.ssl.BatchedSSLViews`, one view of a batch of random 64x64 images, interleaved in one run, for several
batch sizes, on the CPU or a GPU; also a whole SimCLR step of the zoo's encoder with each. The table reports the
fastest of ``--reps`` repetitions (the least disturbed on a shared machine) in milliseconds.

    python evaluations/augment_speed.py --device cpu --out evaluations/results/augment_speed_cpu.md
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import pandas as pd
import torch

from art_ssl.core.device import resolve_device
from art_ssl.models import build_encoder
from art_ssl.ssl import ssl_augmentation
from art_ssl.ssl.methods import METHODS
from art_ssl.zoo import ZOO_ARCH

IMPLEMENTATIONS = ("kornia", "batched")


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 128, 512])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", default=None, help="markdown table (default: print only)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    views = {name: ssl_augmentation(64, 1, implementation=name).to(device) for name in IMPLEMENTATIONS}
    encoder = build_encoder(ZOO_ARCH[0], **ZOO_ARCH[1])
    model = METHODS["simclr"](encoder, 128).to(device)  # the zoo encoder's 128-d embedding
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def simclr_step(aug, x):
        loss = model(aug(x), aug(x))
        opt.zero_grad()
        loss.backward()
        opt.step()

    rows = []
    for batch in args.batches:
        x = torch.rand(batch, 1, 64, 64, device=device)
        tasks = {"one view": lambda aug, x=x: aug(x), "SimCLR step": lambda aug, x=x: simclr_step(aug, x)}
        for task, fn in tasks.items():
            best = dict.fromkeys(IMPLEMENTATIONS, float("inf"))
            for name in IMPLEMENTATIONS:  # warm-up
                fn(views[name])
            for _ in range(args.reps):
                for name in IMPLEMENTATIONS:  # interleaved
                    best[name] = min(best[name], timed(lambda name=name, fn=fn: fn(views[name]), device))
            rows.append(
                {
                    "batch": batch,
                    "task": task,
                    "kornia_ms": round(best["kornia"], 2),
                    "batched_ms": round(best["batched"], 2),
                    "speed-up": round(best["kornia"] / best["batched"], 2),
                }
            )
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"
    text = (
        f"SSL views, kornia vs batched, random 1x64x64 images; {where} ({platform.machine()}), torch "
        f"{torch.__version__}; fastest of {args.reps} interleaved repetitions. Command: `python "
        f"evaluations/augment_speed.py --device {args.device}`\n\n" + table.to_markdown(index=False) + "\n"
    )
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
