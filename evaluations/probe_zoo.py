"""
Measure the linear-probe accuracy of every zoo encoder on Fashion-MNIST at 64x64 and record it in the zoo's
metadata (art_ssl/zoo/zoo.json) and in evaluations/results/zoo_probe.{csv,md}.

Protocol (art_ssl.evaluation.linear_probe): frozen encoder, multinomial logistic regression (L-BFGS, l2 1e-4) on
the embeddings of the training images, accuracy on the 10,000 test images. Two training sets: all 60,000 images
("probe_acc") and the class-balanced 5,000 of seed 0 that art_ssl ships ("probe_acc_5k"). The baseline is the same
fit on the raw 64x64 pixels.

    python evaluations/probe_zoo.py                    # needs `apt-get install dataset-fashion-mnist`
    python evaluations/probe_zoo.py --checkpoints NAME # probe every epoch checkpoint of one training run (5k protocol)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from art_ssl.data import load_fashion_mnist, subsample
from art_ssl.estimators import PyTorchEncoder
from art_ssl.evaluation import linear_probe, raw_pixel_probe
from art_ssl.zoo import ZOO_ARCH, build_from_info, list_encoders, load_encoder, load_state_dict

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "evaluations" / "results"
META = ROOT / "art_ssl" / "zoo" / "zoo.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", nargs="*", default=None, help="zoo names (default: all)")
    parser.add_argument("--checkpoints", default=None, help="training-run name under evaluations/checkpoints")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--root", default=None)
    parser.add_argument("--results-dir", default=str(RESULTS), help="where zoo_probe.{csv,md} go")
    parser.add_argument(
        "--five-k-only",
        action="store_true",
        help="only the 5,000-image probe (a quick check; the table and zoo.json need both)",
    )
    parser.add_argument(
        "--no-zoo-update",
        action="store_true",
        help="leave art_ssl/zoo/zoo.json as it is (the table still shows this run's probes)",
    )
    args = parser.parse_args()
    if args.five_k_only and not args.no_zoo_update:
        parser.error("--five-k-only needs --no-zoo-update: zoo.json records both probes of one encoder")
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)

    x_train, y_train = load_fashion_mnist("train", size=64, root=args.root)
    x_test, y_test = load_fashion_mnist("test", size=64, root=args.root)
    x_5k, y_5k = subsample(x_train, y_train, 5000, seed=0)
    if args.checkpoints:
        probe_checkpoints(args.checkpoints, x_5k, y_5k, x_test, y_test)
        return

    meta = json.loads(META.read_text())
    baseline = {}
    if args.no_baseline:  # reuse the baseline recorded by an earlier full run
        recorded = [e for e in meta.values() if "raw_pixel_probe_acc" in e]
        if recorded:
            baseline = {k: recorded[0][k] for k in ("raw_pixel_probe_acc", "raw_pixel_probe_acc_5k")}
    else:
        splits = {"raw_pixel_probe_acc": (x_train, y_train), "raw_pixel_probe_acc_5k": (x_5k, y_5k)}
        for key, (xt, yt) in splits.items():
            start = time.perf_counter()
            baseline[key] = round(raw_pixel_probe(xt, yt, x_test, y_test).accuracy, 4)
            print(f"raw pixels, {len(yt)} train: {baseline[key]:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    for name in args.encoders or list_encoders(backdoored=False):
        encoder = load_encoder(name, device_type="cpu")
        start = time.perf_counter()
        small = linear_probe(encoder, x_5k, y_5k, x_test, y_test).accuracy
        if args.five_k_only:
            print(f"{name}: 5k {small:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
            continue
        full = linear_probe(encoder, x_train, y_train, x_test, y_test).accuracy
        entry = {
            "probe_acc": round(full, 4),
            "probe_acc_5k": round(small, 4),
            **baseline,
            "probe_protocol": "Fashion-MNIST 64x64, L-BFGS logistic regression (l2 1e-4) on frozen embeddings "
            "of 60,000 (probe_acc) or 5,000 (probe_acc_5k) training images; 10,000 test images",
        }
        meta[name].update(entry)
        print(f"{name}: 60k {full:.4f}  5k {small:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    if args.five_k_only:
        return  # no table: it would mix this run's 5k probes with zoo.json's recorded ones
    for entry in meta.values():  # one baseline for every encoder: same data, same protocol
        entry.update(baseline)
    if not args.no_zoo_update:
        META.write_text(json.dumps(meta, indent=2) + "\n")
    keys = ("probe_acc", "probe_acc_5k", "raw_pixel_probe_acc", "raw_pixel_probe_acc_5k")
    table = pd.DataFrame(
        [  # every probed encoder of the zoo, not only those of this run
            {
                "encoder": name,
                "method": e["method"],
                "epochs": e["epochs"],
                "seed": e["seed"],
                "train_minutes": e["train_minutes"],
                "size_mb": e["size_mb"],
                **{k: e.get(k) for k in keys},
            }
            for name, e in meta.items()
            if "probe_acc" in e
        ]
    )
    table.to_csv(results / "zoo_probe.csv", index=False)
    (results / "zoo_probe.md").write_text(
        "Linear probe on Fashion-MNIST test (10,000 images) at 64x64. Command: `python evaluations/probe_zoo.py`\n\n"
        + table.to_markdown(index=False)
        + "\n"
    )
    print(table.to_markdown(index=False))


def probe_checkpoints(run: str, x_5k, y_5k, x_test, y_test) -> None:
    """Probe accuracy (5k protocol) after every epoch of one training run, from its safetensors checkpoints."""
    info = {"arch": ZOO_ARCH[0], "arch_kwargs": ZOO_ARCH[1], "input_shape": [1, 64, 64]}
    rows = []
    for path in sorted(
        (ROOT / "evaluations" / "checkpoints").glob(f"{run}_epoch*.safetensors"),
        key=lambda p: int(p.stem.rsplit("epoch", 1)[1]),
    ):
        model = build_from_info(info, load_state_dict(path))
        encoder = PyTorchEncoder(model, tuple(info["input_shape"]), device_type="cpu")
        acc = linear_probe(encoder, x_5k, y_5k, x_test, y_test).accuracy
        rows.append({"encoder": run, "epoch": int(path.stem.rsplit("epoch", 1)[1]), "probe_acc_5k": round(acc, 4)})
        print(rows[-1], flush=True)
    pd.DataFrame(rows).to_csv(RESULTS / f"probe_by_epoch_{run}.csv", index=False)


if __name__ == "__main__":
    main()
