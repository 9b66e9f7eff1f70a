"""
``art-ssl`` command line (also ``python -m art_ssl``).

    art-ssl probe                 # linear-probe accuracy of every zoo encoder on the shipped Fashion-MNIST subset
    art-ssl probe --data fashion_mnist --n-train 60000
    art-ssl zoo                   # list the shipped encoders and their recorded accuracies
    art-ssl pretrain --method simclr --epochs 10 --out my_encoder.safetensors
"""
from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np

from art_ssl.data import TASKS, load_task
from art_ssl.evaluation.probe import linear_probe, raw_pixel_probe
from art_ssl.ssl.methods import METHODS
from art_ssl.zoo import encoder_info, list_encoders, load_encoder, zoo_table


def _probe(args: argparse.Namespace) -> int:
    import pandas as pd

    names = list_encoders() if args.encoders == ["all"] else args.encoders
    unknown = [n for n in names if n not in list_encoders()]
    if unknown:
        print(f"error: unknown encoder(s) {unknown}; choose from {list_encoders()}", file=sys.stderr)
        return 2
    task = load_task(args.data, size=args.size, root=args.root, n_train=args.n_train, n_test=args.n_test)
    print(
        f"Linear probe on {task.name} at {args.size}x{args.size}: {len(task.y_train)} train / {len(task.y_test)} "
        f"test images, {task.nb_classes} classes",
        flush=True,
    )
    rows = []
    for name in names:
        start = time.perf_counter()
        encoder = load_encoder(name, device_type=args.device)
        result = linear_probe(encoder, task.x_train, task.y_train, task.x_test, task.y_test)
        info = encoder_info(name)
        rows.append({"encoder": name, "method": info["method"], "probe_acc": result.accuracy,
                     "recorded_probe_acc_60k": info.get("probe_acc"),
                     "seconds": time.perf_counter() - start})  # fmt: skip
    if not args.no_baseline:
        start = time.perf_counter()
        base = raw_pixel_probe(task.x_train, task.y_train, task.x_test, task.y_test)
        rows.append({"encoder": "raw pixels (baseline)", "method": "-", "probe_acc": base.accuracy,
                     "seconds": time.perf_counter() - start})  # fmt: skip
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".4f") if _has_tabulate() else table.to_string(index=False))
    print("recorded_probe_acc_60k: the zoo's record on the full Fashion-MNIST (60,000 train / 10,000 test images)")
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


def _zoo(args: argparse.Namespace) -> int:
    table = zoo_table()
    print(table.to_markdown(index=False) if _has_tabulate() else table.to_string(index=False))
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    import torch
    from safetensors.torch import save_file

    from art_ssl.models import build_encoder
    from art_ssl.ssl import pretrain

    task = load_task(args.data, size=args.size, root=args.root, n_train=args.n_train)
    torch.manual_seed(args.seed)
    kwargs = {"in_channels": task.x_train.shape[1], "width": args.width, "stem_stride": args.stem_stride}
    encoder = build_encoder("resnet18", **kwargs)
    result = pretrain(encoder, task.x_train, args.method, nb_epochs=args.epochs, batch_size=args.batch_size,
                      seed=args.seed, device_type=args.device)  # fmt: skip
    save_file({k: v.contiguous() for k, v in result.encoder.state_dict().items()}, args.out)
    print(result.history.to_string(index=False))
    print(f"saved {args.out} (resnet18 {kwargs})")
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="art-ssl", description="ART plugin for self-supervised encoders.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)

    probe = sub.add_parser("probe", help="linear-probe accuracy of zoo encoders")
    probe.add_argument("--encoders", nargs="+", default=["all"], help="zoo names, or 'all'")
    probe.add_argument("--data", default="fashion_mnist_subset", choices=TASKS)
    probe.add_argument("--root", default=None, help="dataset folder for on-disk datasets")
    probe.add_argument("--size", type=int, default=64)
    probe.add_argument("--n-train", type=int, default=None)
    probe.add_argument("--n-test", type=int, default=None)
    probe.add_argument("--device", default="gpu", choices=["gpu", "cpu"])
    probe.add_argument("--no-baseline", action="store_true", help="skip the raw-pixel probe")
    probe.add_argument("--csv", default=None, help="also write the table to this CSV file")
    probe.set_defaults(func=_probe)

    zoo = sub.add_parser("zoo", help="list the shipped encoders")
    zoo.set_defaults(func=_zoo)

    pre = sub.add_parser("pretrain", help="pre-train a ResNet-18 encoder with an SSL method")
    pre.add_argument("--method", default="simclr", choices=sorted(METHODS))
    pre.add_argument("--data", default="fashion_mnist_subset", choices=TASKS)
    pre.add_argument("--root", default=None)
    pre.add_argument("--size", type=int, default=64)
    pre.add_argument("--n-train", type=int, default=None)
    pre.add_argument("--epochs", type=int, default=10)
    pre.add_argument("--batch-size", type=int, default=256)
    pre.add_argument("--width", type=int, default=16)
    pre.add_argument("--stem-stride", type=int, default=2, choices=[1, 2])
    pre.add_argument("--seed", type=int, default=0)
    pre.add_argument("--device", default="gpu", choices=["gpu", "cpu"])
    pre.add_argument("--out", required=True, help="output .safetensors file")
    pre.set_defaults(func=_pretrain)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    np.set_printoptions(precision=4)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
