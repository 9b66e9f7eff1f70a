"""
``art-ssl`` command line (also ``python -m art_ssl``).

    art-ssl probe                 # linear-probe accuracy of every zoo encoder on the shipped Fashion-MNIST subset
    art-ssl probe --data fashion_mnist --n-train 60000
    art-ssl zoo                   # list the shipped encoders and their recorded accuracies
    art-ssl pretrain --method simclr --epochs 10 --out my_encoder.safetensors
    art-ssl audit                 # reduced robustness audit of a zoo encoder -> audit/report.html
    art-ssl audit --encoder my_encoder.safetensors --data cifar10:/data/cifar-10-batches-py --attacks ssp pgd \
        --defences none trades --eps 4 10 --out my_audit
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

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

    if not args.out.endswith(".safetensors"):
        raise SystemExit(f"art-ssl pretrain: --out must name a .safetensors file, got {args.out!r}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # before training, not after it
    task = load_task(args.data, size=args.size, root=args.root, n_train=args.n_train)
    torch.manual_seed(args.seed)
    kwargs = {"in_channels": task.x_train.shape[1], "width": args.width, "stem_stride": args.stem_stride}
    encoder = build_encoder("resnet18", **kwargs)
    result = pretrain(encoder, task.x_train, args.method, nb_epochs=args.epochs, batch_size=args.batch_size,
                      seed=args.seed, device_type=args.device, checkpoint_dir=args.checkpoint_dir,
                      amp={"on": True, "off": False}.get(args.amp, "auto"))  # fmt: skip
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


AUDIT_DEFAULTS = {
    "encoder": ["simclr_r18", "simclr_r18_badencoder"],
    "data": ["fashion-mnist-subset"],
    "attacks": ["advencoder", "ssp", "pap_ugs", "pgd", "badencoder"],
    "defences": ["none", "finetune", "trades"],
    "eps": [4.0, 10.0],
}


def _audit(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from art_ssl.evaluation.grid import GridConfig, run_grid
    from art_ssl.evaluation.registry import AttackSettings
    from art_ssl.evaluation.report import summary, write_report
    from art_ssl.evaluation.store import ResultsWriteError

    out = Path(args.out)
    try:
        config = GridConfig(
            encoders=tuple(args.encoder), tasks=tuple(args.data), attacks=tuple(args.attacks),
            defences=tuple(args.defences), eps=tuple(args.eps), seeds=tuple(args.seed), size=args.size,
            n_train=args.n_train or None, n_test=args.n_test or None, epochs=args.epochs, batch_size=args.batch_size,
            pgd_steps=args.pgd_steps, whitebox_n=args.whitebox_n, surrogate_n=args.surrogate_n,
            attack_settings=AttackSettings(surrogate_n=args.surrogate_n, gen_epochs=args.gen_epochs,
                                           sign_epochs=args.sign_epochs),
            device_type=args.device, verbose=args.verbose, amp={"on": True, "off": False}.get(args.amp, "auto"),
        )  # fmt: skip
        print(f"Auditing {len(config.cells())} cells -> {out}/results.csv", flush=True)
        start = time.perf_counter()
        frame = run_grid(config, out / "results.csv", backend=args.backend, ray_address=args.ray_address)
        paths = write_report(frame, out, asdict(config))
    except (ValueError, TypeError, FileNotFoundError, ImportError, ResultsWriteError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary(frame).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nDone in {(time.perf_counter() - start) / 60:.1f} min. Report: {paths['report.html'].resolve()}")
    return 0


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
    pre.add_argument("--checkpoint-dir", default=None,
                     help="save the training state after every epoch; run again with the same folder to resume")
    pre.add_argument("--amp", default="auto", choices=["auto", "on", "off"],
                     help="bf16 mixed precision (auto: only where measured faster)")
    pre.set_defaults(func=_pretrain)

    from art_ssl.evaluation.registry import DEFENCES, UNIVERSAL_ATTACKS, WHITEBOX_ATTACKS
    from art_ssl.evaluation.sources import DATA_KINDS

    audit = sub.add_parser(
        "audit", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="robustness audit of encoders: attacks x defences downstream -> results.csv, report.md/.html",
        description="Audit pre-trained encoders: for each downstream task and defence (how the downstream model is "
                    "trained), the benign accuracy (BA), the robust accuracy (RA) under downstream-agnostic universal "
                    "perturbations crafted on the encoder alone and under white-box attacks on the downstream model, "
                    "and the backdoor attack success rate (ASR) of backdoored zoo encoders. Finished cells are "
                    "appended to OUT/results.csv; run the same command again to resume. Without arguments: a reduced "
                    "audit of simclr_r18 and its backdoored copy on the shipped Fashion-MNIST subset (~10 min on 2 "
                    "CPU cores).",
        epilog=f"attacks: universal {', '.join(UNIVERSAL_ATTACKS)}; white-box {', '.join(WHITEBOX_ATTACKS)}, "
               f"torchattacks:<Name> (e.g. torchattacks:APGD); backdoor: badencoder.\n"
               f"defences: {', '.join(DEFENCES)}.\ndata: {', '.join(DATA_KINDS)}.",
    )  # fmt: skip
    audit.add_argument("--encoder", nargs="+", default=AUDIT_DEFAULTS["encoder"],
                       help="zoo names, .safetensors files of the zoo architecture, or TorchScript files")
    audit.add_argument("--data", nargs="+", default=AUDIT_DEFAULTS["data"], help="downstream datasets (see below)")
    audit.add_argument("--attacks", nargs="+", default=AUDIT_DEFAULTS["attacks"])
    audit.add_argument("--defences", nargs="+", default=AUDIT_DEFAULTS["defences"])
    audit.add_argument("--eps", nargs="+", type=float, default=AUDIT_DEFAULTS["eps"], help="budgets in 1/255 units")
    audit.add_argument("--out", default="audit", help="output folder (results.csv, report.md, report.html, PNGs)")
    audit.add_argument("--n-train", type=int, default=2000, help="downstream training images (0: all)")
    audit.add_argument("--n-test", type=int, default=1000, help="downstream test images (0: all)")
    audit.add_argument("--epochs", type=int, default=2, help="epochs of each defence (a frozen-encoder head: >= 10)")
    audit.add_argument("--batch-size", type=int, default=256)
    audit.add_argument("--pgd-steps", type=int, default=5, help="PGD steps inside adversarial defences")
    audit.add_argument("--whitebox-n", type=int, default=100, help="test images under white-box attacks")
    audit.add_argument("--surrogate-n", type=int, default=2000, help="attacker's unlabelled images")
    audit.add_argument("--gen-epochs", type=int, default=5, help="AdvEncoder generator epochs (official 20)")
    audit.add_argument("--sign-epochs", type=int, default=3, help="PAP/SSP passes over the attacker's images")
    audit.add_argument("--size", type=int, default=64, help="image side (the papers' 64)")
    audit.add_argument("--seed", type=int, nargs="+", default=[0], help="one run per seed")
    audit.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    audit.add_argument("--amp", default="auto", choices=["auto", "on", "off"],
                       help="bf16 mixed precision of defences and attacks (auto: only where measured faster)")
    audit.add_argument("--backend", default="local", choices=["local", "ray"], help="ray: pip install art_ssl[ray]")
    audit.add_argument("--ray-address", default=None, help="existing Ray cluster (default: a local instance)")
    audit.set_defaults(func=_audit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    np.set_printoptions(precision=4)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
