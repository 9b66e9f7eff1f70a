"""
``art-ssl`` command line (also ``python -m art_ssl``).

    art-ssl probe                 # linear-probe accuracy of every zoo encoder on the shipped Fashion-MNIST subset
    art-ssl probe --data fashion_mnist --n-train 60000
    art-ssl zoo                   # list the shipped encoders and their recorded accuracies
    art-ssl pretrain --method simclr --epochs 10 --out my_encoder.safetensors
    art-ssl convert moco_v2_800ep.pth.tar --out moco.safetensors --mean 0.485 0.456 0.406 --std 0.229 0.224 0.225
    art-ssl audit                 # reduced robustness audit of a zoo encoder -> audit/report.html
    art-ssl audit --encoder my_encoder.safetensors --data cifar10:/data/cifar-10-batches-py --attacks ssp pgd \
        --defences none trades --eps 4 10 --out my_audit

Conventions: every setting is checked before any work; a user error exits with status 2 and one ``error:`` line
(``--debug`` shows the traceback instead); ``-v``/``--debug`` go before or after the subcommand; ``--help`` shows
every default. Heavy libraries (torch, ART, pandas) are imported only by the subcommand that runs, so ``--help`` and
``--version`` answer at once.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from art_ssl import __version__

# The names the subcommands accept, kept here (no torch import) and checked against their modules by the tests.
TASK_NAMES = ("fashion_mnist", "fashion_mnist_subset", "digits", "mnist", "kmnist", "cifar10", "stl10")
METHOD_NAMES = ("barlow_twins", "byol", "moco", "simclr", "simsiam")
DEVICES = ("auto", "cpu", "gpu")
AUDIT_DEFAULTS = {
    "encoder": ["simclr_r18", "simclr_r18_badencoder"],
    "data": ["fashion-mnist-subset"],
    "attacks": ["advencoder", "ssp", "pap_ugs", "pgd", "badencoder"],
    "defences": ["none", "finetune", "trades"],
    "eps": [4.0, 10.0],
}
# GridConfig's parameter names as the command line spells them, for messages raised by the library.
_CLI_NAMES = {
    "encoders": "--encoder",
    "tasks": "--data",
    "data": "--data",
    "attacks": "--attacks",
    "defences": "--defences",
    "eps": "--eps",
    "seeds": "--seed",
    "size": "--size",
    "n_train": "--n-train",
    "n_test": "--n-test",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "pgd_steps": "--pgd-steps",
    "whitebox_n": "--whitebox-n",
    "surrogate_n": "--surrogate-n",
    "surrogate_data": "--surrogate-data",
    "attack_settings.gen_epochs": "--gen-epochs",
    "attack_settings.sign_epochs": "--sign-epochs",
    "attack_settings.surrogate_n": "--surrogate-n",
    "device_type": "--device",
    "task_epochs": "--task-epochs",
    "anneal_epochs": "--anneal-epochs",
    "attack_eps": "--attack-eps",
    "transfer_encoder": "--transfer-encoder",
    "out": "--out",
    "root": "--root",
}


class UserError(Exception):
    """A mistake in the command line or its inputs: reported as one ``error:`` line, exit status 2."""


# Errors that a user's input causes (a bad value, a missing or unreadable file, a full disk): exit 2, one line.
USER_ERRORS = (UserError, ValueError, TypeError, FileNotFoundError, PermissionError, ImportError, OSError)


# ----------------------------------------------------------------------------------------------------------- types
def _int_at_least(minimum: int, meaning: str = ""):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an int >= {minimum}{meaning}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}{meaning}, got {value}")
        return value

    parse.__name__ = f"int >= {minimum}"
    return parse


def _budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 255], got {text!r}") from None
    if not 0 < value <= 255:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be in (0, 255] (1/255 units), got {text}")
    return value


def _points(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of accuracy points in [0, 100], got {text!r}") from None
    if not 0 <= value <= 100:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be in [0, 100] (accuracy points), got {text}")
    return value


def _task_name(text: str) -> str:
    """``fashion-mnist-subset`` and ``fashion_mnist_subset`` are one dataset."""
    name = text.replace("-", "_")
    if name not in TASK_NAMES:
        choices = ", ".join(n.replace("_", "-") for n in TASK_NAMES)
        raise argparse.ArgumentTypeError(f"unknown dataset {text!r}; choose from {choices} (- or _ alike)")
    return name


def _resolve_device(device: str) -> str:
    if device == "auto":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    return device


def _cli_message(message: object) -> str:
    """A library message with GridConfig's names spelt as the command line spells them, on one line."""
    message = re.sub(
        r"`([\w.]+)=?`",
        lambda m: f"`{_CLI_NAMES[m.group(1)]}`" if m.group(1) in _CLI_NAMES else m.group(0),
        str(message),
    )
    return " ".join(message.split())


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------------------------------------- commands
def _probe(args: argparse.Namespace) -> int:
    import pandas as pd

    from art_ssl.data import load_task
    from art_ssl.evaluation.probe import linear_probe, raw_pixel_probe
    from art_ssl.zoo import encoder_info, list_encoders, load_encoder

    names = list_encoders() if args.encoders == ["all"] else list(dict.fromkeys(args.encoders))
    unknown = [n for n in names if n not in list_encoders()]
    if unknown:
        raise UserError(f"--encoders: unknown encoder(s) {unknown}; choose from {list_encoders()} or 'all'")
    if args.csv:
        from art_ssl.evaluation.store import check_output_folder

        check_output_folder(Path(args.csv).expanduser().resolve().parent, "--csv")
    device = _resolve_device(args.device)
    task = load_task(args.data, size=args.size, root=args.root, n_train=args.n_train, n_test=args.n_test)
    print(
        f"Linear probe on {task.name} at {args.size}x{args.size}: {len(task.y_train)} train / {len(task.y_test)} "
        f"test images, {task.nb_classes} classes",
        flush=True,
    )
    rows = []
    for name in names:
        start = time.perf_counter()
        encoder = load_encoder(name, device_type=device)
        result = linear_probe(encoder, task.x_train, task.y_train, task.x_test, task.y_test)
        info = encoder_info(name)
        rows.append(
            {
                "encoder": name,
                "method": info["method"],
                "probe_acc": result.accuracy,
                "recorded_probe_acc_60k": info.get("probe_acc"),
                "seconds": time.perf_counter() - start,
            }
        )
    if not args.no_baseline:
        start = time.perf_counter()
        base = raw_pixel_probe(task.x_train, task.y_train, task.x_test, task.y_test)
        rows.append(
            {
                "encoder": "raw pixels (baseline)",
                "method": "-",
                "probe_acc": base.accuracy,
                "seconds": time.perf_counter() - start,
            }
        )
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".4f") if _has_tabulate() else table.to_string(index=False))
    print("recorded_probe_acc_60k: the zoo's record on the full Fashion-MNIST (60,000 train / 10,000 test images)")
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


def _zoo(args: argparse.Namespace) -> int:
    from art_ssl.zoo import zoo_table

    table = zoo_table()
    print(table.to_markdown(index=False) if _has_tabulate() else table.to_string(index=False))
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    if not args.out.endswith(".safetensors"):
        raise UserError(f"--out must name a .safetensors file, got {args.out!r}")
    from art_ssl.evaluation.store import check_output_folder

    out = Path(args.out).expanduser()
    if out.is_dir():
        raise UserError(f"--out '{out}' is a folder; name a .safetensors file")
    check_output_folder(out.resolve().parent, "--out")  # before training, not after it
    from art_ssl.core import distributed

    device = _resolve_device(args.device)
    distributed.init_from_env(device)  # under torchrun: data-parallel (gloo on CPU, NCCL on CUDA); rank 0 writes
    try:
        return _pretrain_run(args, out, device)
    finally:
        distributed.shutdown()


def _pretrain_run(args: argparse.Namespace, out: Path, device: str) -> int:
    import torch

    from art_ssl.core import distributed
    from art_ssl.data import load_task
    from art_ssl.models import build_encoder
    from art_ssl.ssl import pretrain
    from art_ssl.zoo import save_encoder

    task = load_task(args.data, size=args.size, root=args.root, n_train=args.n_train)
    if len(task.x_train) < args.batch_size:
        logging.getLogger(__name__).warning(
            "--batch-size %d > %d training images: one smaller batch per epoch", args.batch_size, len(task.x_train)
        )
    torch.manual_seed(args.seed)
    import numpy as np

    x = task.x_train if args.channels is None else np.repeat(task.x_train[:, :1], args.channels, axis=1)
    kwargs = {"in_channels": x.shape[1]}
    if args.arch == "zoo_resnet18":
        kwargs |= {"width": args.width, "stem_stride": args.stem_stride}
    encoder = build_encoder(args.arch, **kwargs)
    result = pretrain(
        encoder,
        x,
        args.method,
        nb_epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        device_type=device,
        checkpoint_dir=args.checkpoint_dir,
        amp={"on": True, "off": False}.get(args.amp, "auto"),
        augmentation=args.augmentation,
    )
    if not distributed.is_main_process():
        return 0
    save_encoder(
        result.encoder, str(out), arch=args.arch, arch_kwargs=kwargs, input_shape=x.shape[1:], method=args.method
    )
    print(result.history.to_string(index=False))
    print(f"saved {out} ({args.arch} {kwargs}, input {tuple(x.shape[1:])}, {args.method}; metadata in the file)")
    return 0


def _defend(args: argparse.Namespace) -> int:
    """
    Fine-tune an encoder + head with one defence on one task and write the defended encoder (``--out``, a
    ``.safetensors`` file with art_ssl's metadata, readable by ``load_encoder`` and the audit) and its head
    (``<out stem>.head.safetensors``, metadata: defence, task, classes, test BA / RA). Runs under ``torchrun``
    (data-parallel, :mod:`art_ssl.core.distributed`): rank 0 writes the files and prints.
    """
    if not args.out.endswith(".safetensors"):
        raise UserError(f"--out must name a .safetensors file, got {args.out!r}")
    if args.defence == "zepad" and args.checkpoint_dir is not None:
        raise UserError("--checkpoint-dir: ZePAD's training is not resumable (its trainer does not checkpoint)")
    from art_ssl.evaluation.store import check_output_folder

    out = Path(args.out).expanduser()
    if out.is_dir():
        raise UserError(f"--out '{out}' is a folder; name a .safetensors file")
    check_output_folder(out.resolve().parent, "--out")
    from art_ssl.core import distributed

    device = _resolve_device(args.device)
    distributed.init_from_env(device)  # under torchrun: join the group (gloo on CPU, NCCL on CUDA)
    try:
        return _defend_run(args, out, device)
    finally:
        distributed.shutdown()


def _defend_run(args: argparse.Namespace, out: Path, device: str) -> int:
    import torch

    from art_ssl.core import distributed
    from art_ssl.estimators import encoder_classifier
    from art_ssl.evaluation.registry import DefenceSettings, make_defence_trainer, zepad_partners
    from art_ssl.evaluation.sources import EncoderOptions, load_data_spec, load_encoder_spec

    options = EncoderOptions(
        arch=args.arch,
        mean=args.mean and tuple(args.mean),
        std=args.std and tuple(args.std),
        key_prefix=args.key_prefix,
        trust_code=args.trust_code,
    )

    def load(name: str):
        return load_encoder_spec(name, args.size, device, options)

    encoder = load(args.encoder)
    arch, arch_kwargs = _arch_of(encoder.model)  # before training: only ResNets are written with metadata
    task = load_data_spec(args.data, args.size, encoder.input_shape[0], args.n_train, args.n_test, args.seed)
    nb_classes = int(task.y_train.max()) + 1
    torch.manual_seed(args.seed)  # the head's initialisation
    classifier = encoder_classifier(encoder, nb_classes, freeze_encoder=False, device_type=device)
    trainer = make_defence_trainer(
        args.defence,
        classifier,
        args.epochs,
        batch_size=args.batch_size,
        pgd_steps=args.pgd_steps,
        seed=args.seed,
        verbose=args.verbose and distributed.is_main_process(),
        encoder_name=args.encoder,
        defence_settings=DefenceSettings(
            zepad_auxiliary=args.zepad_auxiliary, zepad_bmp=args.zepad_bmp, zepad_head_epochs=args.zepad_head_epochs
        ),
        load_encoder=load,
        amp={"on": True, "off": False}.get(args.amp, "auto"),
    )
    if args.defence == "zepad":  # before training: every branch's encoder is written with its architecture
        for encoder_module in (trainer.auxiliary_encoder, trainer.bmp_encoder):
            _arch_of(encoder_module)
    fit_kwargs = {} if args.checkpoint_dir is None else {"checkpoint_dir": args.checkpoint_dir}
    trainer.fit(task.x_train, task.y_train, **fit_kwargs)
    if not distributed.is_main_process():
        return 0
    defended = trainer.get_classifier()
    ba, ra = _ba_ra(defended, task.x_test, task.y_test, args.eps / 255, args.batch_size)
    meta = _defended_metadata(args, task.name, nb_classes, ba, ra)
    if args.defence == "zepad":  # the encoders the registry chose for ZePAD's other branches
        meta["zepad_auxiliary"], meta["zepad_bmp"] = zepad_partners(args.encoder, args.zepad_auxiliary, args.zepad_bmp)
    print(f"{args.defence} on {task.name}: test BA {ba:.4f}, RA {ra:.4f} (PGD-10, eps {args.eps:g}/255)")
    if args.defence == "zepad":
        _write_zepad(trainer, defended, out, arch, arch_kwargs, meta)
        return 0
    _write_defended(defended, out, arch, arch_kwargs, meta)
    print(f"saved {out} (encoder, {arch} {arch_kwargs}) and {_head_path(out)} (head)")
    return 0


def _ba_ra(classifier, x, y, eps: float, batch_size: int) -> tuple[float, float]:
    """Benign accuracy and accuracy under PGD-10 (uniform start, step eps/4) of an ART classifier on a test set."""
    import numpy as np
    from art.attacks.evasion import ProjectedGradientDescent

    ba = float(np.mean(classifier.predict(x, batch_size=batch_size).argmax(1) == y))
    attack = ProjectedGradientDescent(
        classifier, eps=eps, eps_step=eps / 4, max_iter=10, batch_size=batch_size, verbose=False
    )
    x_adv = attack.generate(x.astype(np.float32))
    return ba, float(np.mean(classifier.predict(x_adv, batch_size=batch_size).argmax(1) == y))


def _head_path(out: Path) -> Path:
    return out.with_name(out.name[: -len(".safetensors")] + ".head.safetensors")


def _defended_metadata(args: argparse.Namespace, task: str, nb_classes: int, ba: float, ra: float) -> dict[str, str]:
    import json

    return {
        "defence": args.defence,
        "encoder": str(args.encoder),
        "task": task,
        "nb_classes": str(nb_classes),
        "epochs": str(args.epochs),
        "test_ba": f"{ba:.6f}",
        "test_ra": f"{ra:.6f}",
        "ra_attack": json.dumps({"attack": "pgd", "steps": 10, "eps": args.eps / 255}),
    }


def _save_defended_encoder(encoder, out: Path, classifier, arch: str, arch_kwargs: dict) -> None:
    from art_ssl.estimators import mean_std_of
    from art_ssl.zoo import save_encoder

    mean_std = mean_std_of(classifier)
    save_encoder(
        encoder,
        str(out),
        arch=arch,
        arch_kwargs=arch_kwargs,
        input_shape=classifier.input_shape,
        mean=None if mean_std is None else mean_std[0],
        std=None if mean_std is None else mean_std[1],
    )


def _write_defended(classifier, out: Path, arch: str, arch_kwargs: dict, meta: dict[str, str]) -> None:
    from safetensors.torch import save_file

    model = classifier.model
    _save_defended_encoder(model.encoder, out, classifier, arch, arch_kwargs)
    head = {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
    save_file(head, str(_head_path(out)), metadata={"art_ssl." + k: v for k, v in meta.items()})


def _zepad_path(out: Path) -> Path:
    return out.with_name(out.name[: -len(".safetensors")] + ".zepad.safetensors")


def _write_zepad(trainer, fused, out: Path, arch: str, arch_kwargs: dict, meta: dict[str, str]) -> None:
    """ZePAD: the victim's MPAE encoder (adversarially fine-tuned) to ``out``, the fused model beside it."""
    from art_ssl.defences import save_zepad

    _save_defended_encoder(trainer.mpae_encoders_[0], out, fused, arch, arch_kwargs)
    zepad_file = save_zepad(fused, _zepad_path(out), info=meta)
    print(f"saved {out} (the victim's MPAE encoder, {arch} {arch_kwargs}) and {zepad_file} (the fused ZePAD model)")


def _convert(args: argparse.Namespace) -> int:
    """Any checkpoint load_encoder reads -> a .safetensors file with its metadata (arch, input, mean/std)."""
    if not args.out.endswith(".safetensors"):
        raise UserError(f"--out must name a .safetensors file, got {args.out!r}")
    from art_ssl.evaluation.store import check_output_folder

    out = Path(args.out).expanduser()
    check_output_folder(out.resolve().parent, "--out")
    mean_std = _mean_std(args)
    from art_ssl.zoo import load_encoder, save_encoder

    encoder = load_encoder(
        args.source,
        "cpu",
        arch=args.arch,
        key_prefix=args.key_prefix,
        input_shape=tuple(args.input_shape) if args.input_shape else None,
        preprocessing=mean_std,
        trust_code=args.trust_code,
    )
    arch, arch_kwargs = _arch_of(encoder.model)
    save_encoder(
        encoder.model,
        str(out),
        arch=arch,
        arch_kwargs=arch_kwargs,
        input_shape=encoder.input_shape,
        mean=None if mean_std is None else mean_std[0],
        std=None if mean_std is None else mean_std[1],
        method=args.method,
    )
    print(f"saved {out}: {arch} {arch_kwargs}, input {encoder.input_shape}, embedding {encoder.embedding_dim}")
    return 0


def _arch_of(model) -> tuple[str, dict]:
    from art_ssl.zoo.metadata import arch_of

    try:
        return arch_of(model)
    except ValueError as err:
        raise UserError(str(err)) from None


def _mean_std(args: argparse.Namespace):
    if (args.mean is None) != (args.std is None):
        raise UserError("--mean and --std must be given together")
    return None if args.mean is None else (tuple(args.mean), tuple(args.std))


def _add_encoder_options(parser: argparse.ArgumentParser) -> None:
    """The flags that say how to read an encoder file without art_ssl metadata (art_ssl.zoo.load_encoder)."""
    parser.add_argument(
        "--arch",
        default=None,
        help="architecture of checkpoint files: resnet18, resnet18_cifar, "
        "resnet34[_cifar], resnet50[_cifar], zoo_resnet18:width=W,stem_stride=S (default: metadata, "
        "else read off the weights)",
    )
    parser.add_argument("--mean", type=float, nargs="+", default=None, help="per-channel normalisation mean")
    parser.add_argument("--std", type=float, nargs="+", default=None, help="per-channel normalisation std")
    parser.add_argument("--key-prefix", default=None, help="prefix of the backbone's keys (default: detected)")
    parser.add_argument(
        "--trust-code",
        action="store_true",
        help="allow TorchScript files: loading one RUNS THE CODE stored in the file",
    )


def _add_zepad_options(parser: argparse.ArgumentParser) -> None:
    """ZePAD's other encoders (zoo names or files), for `audit` and `defend`."""
    parser.add_argument(
        "--zepad-auxiliary",
        default=None,
        help="ZePAD's second MPAE encoder (default: a clean zoo encoder of another SSL method)",
    )
    parser.add_argument(
        "--zepad-bmp", default=None, help="ZePAD's BMP encoder (default: a clean zoo encoder other than both)"
    )


def _audit(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    from datetime import datetime, timezone

    from art_ssl.evaluation.grid import GridConfig, run_grid
    from art_ssl.evaluation.registry import AttackSettings, DefenceSettings
    from art_ssl.evaluation.report import display, summary, verdict, write_report
    from art_ssl.evaluation.sources import EncoderOptions
    from art_ssl.evaluation.store import check_output_folder

    out = Path(args.out).expanduser()
    config = GridConfig(
        encoders=tuple(args.encoder),
        tasks=tuple(args.data),
        attacks=tuple(args.attacks),
        defences=tuple(args.defences),
        eps=tuple(args.eps),
        seeds=tuple(args.seed),
        size=args.size,
        n_train=args.n_train or None,
        n_test=args.n_test or None,
        epochs=args.epochs,
        batch_size=args.batch_size,
        pgd_steps=args.pgd_steps,
        whitebox_n=args.whitebox_n,
        surrogate_n=args.surrogate_n,
        surrogate_data=args.surrogate_data,
        attack_settings=AttackSettings(
            surrogate_n=args.surrogate_n, gen_epochs=args.gen_epochs, sign_epochs=args.sign_epochs
        ),
        defence_settings=DefenceSettings(zepad_auxiliary=args.zepad_auxiliary, zepad_bmp=args.zepad_bmp),
        device_type=args.device,
        verbose=args.verbose,
        amp={"on": True, "off": False}.get(args.amp, "auto"),
        task_epochs=tuple(args.task_epochs),
        anneal_epochs=args.anneal_epochs,
        attack_eps=tuple(args.attack_eps),
        transfer_encoder=args.transfer_encoder,
        encoder_options=EncoderOptions(
            arch=args.arch,
            mean=args.mean and tuple(args.mean),
            std=args.std and tuple(args.std),
            key_prefix=args.key_prefix,
            trust_code=args.trust_code,
        ),
    )
    check_output_folder(out, "--out")
    print(f"Auditing {len(config.cells())} cells -> {out}/results.csv", flush=True)
    start = time.perf_counter()
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    frame = run_grid(config, out / "results.csv", backend=args.backend, ray_address=args.ray_address)
    run = {"started": started, "seconds": time.perf_counter() - start}
    paths = write_report(frame, out, asdict(config), run=run, max_ba_cost=args.max_ba_cost / 100)
    print(display(summary(frame)).to_string(index=False))  # deltas in points, no NaN
    ok = frame[frame["status"].astype(str).eq("ok")] if "status" in frame else frame
    for _, group in ok.groupby(["encoder", "task"], sort=False):
        print("\n" + verdict(group, max_ba_cost=args.max_ba_cost / 100).replace("**", ""))
    print(f"\nDone in {(time.perf_counter() - start) / 60:.1f} min. Report: {paths['report.html'].resolve()}")
    return 0


# ----------------------------------------------------------------------------------------------------------- parser
class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after every help text (but ``None`` and switches, whose help says what off means);
    descriptions and epilogs keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action) or ""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose epilog may come from a function, ``lazy_epilog``, called only when help is shown
    (the audit's lists of attacks and defences need the registry, which imports ART)."""

    lazy_epilog: Callable[[], str] | None = None

    def format_help(self) -> str:
        if self.lazy_epilog is not None:
            self.epilog, self.lazy_epilog = self.lazy_epilog(), None
        return super().format_help()


def _audit_epilog() -> str:
    from art_ssl.audit_names import DATA_KINDS, DEFENCES, UNIVERSAL_ATTACKS, WHITEBOX_ATTACKS

    return (
        f"attacks: universal {', '.join(UNIVERSAL_ATTACKS)}; white-box {', '.join(WHITEBOX_ATTACKS)}, "
        f"torchattacks:<Name> (e.g. torchattacks:APGD); backdoor: badencoder. A universal attack crafted on "
        f"another encoder: transfer:<attack> (see --transfer-encoder); on the defended model's own encoder (the "
        f"attacker knows the defence): adaptive:<attack>.\n"
        f"defences: {', '.join(DEFENCES)}.\ndata: {', '.join(DATA_KINDS)} (- or _ alike)."
    )


def _add_common(parser: argparse.ArgumentParser, top: bool) -> None:
    """-v and --debug, on the main parser and on every subcommand (so they work before or after it); a
    subcommand's copy does not reset what was given before the subcommand."""
    default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    parser.add_argument("-v", "--verbose", action="store_true", default=default(False), help="log progress")
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="on an error, show the full traceback instead of one line",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="art-ssl",
        formatter_class=_Formatter,
        description="ART plugin for self-supervised encoders: audit their robustness to downstream-"
        "agnostic adversarial examples and backdoors, and compare defences.",
    )
    parser.add_argument("--version", action="version", version=f"art-ssl {__version__}")
    _add_common(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help_text: str, description: str) -> _Parser:
        p = sub.add_parser(name, help=help_text, description=description, formatter_class=_Formatter)
        _add_common(p, top=False)
        return p

    probe = command(
        "probe",
        "linear-probe accuracy of zoo encoders",
        "Linear-probe accuracy of the shipped encoders on a downstream dataset (a logistic-regression "
        "head on frozen embeddings), beside a raw-pixel baseline.",
    )
    probe.add_argument("--encoders", nargs="+", default=["all"], help="zoo names, or 'all'")
    probe.add_argument(
        "--data",
        default="fashion_mnist_subset",
        type=_task_name,
        metavar="DATASET",
        help=f"dataset: {', '.join(TASK_NAMES)} (- or _ alike)",
    )
    probe.add_argument("--root", default=None, help="dataset folder for on-disk datasets (default: the loader's)")
    probe.add_argument("--size", type=_int_at_least(8), default=64, help="image side")
    probe.add_argument("--n-train", type=_int_at_least(1), default=None, help="training images (default: all)")
    probe.add_argument("--n-test", type=_int_at_least(1), default=None, help="test images (default: all)")
    probe.add_argument("--device", default="auto", choices=DEVICES, help="auto: the GPU when CUDA is available")
    probe.add_argument("--no-baseline", action="store_true", help="skip the raw-pixel probe")
    probe.add_argument("--csv", default=None, help="also write the table to this CSV file (default: no file)")
    probe.set_defaults(func=_probe)

    zoo = command(
        "zoo",
        "list the shipped encoders",
        "List the encoders shipped in the package: SSL method, architecture, recorded probe accuracy, "
        "and the backdoored copies with their targets.",
    )
    zoo.set_defaults(func=_zoo)

    pre = command(
        "pretrain",
        "pre-train a ResNet-18 encoder with an SSL method",
        "Pre-train a small ResNet-18 encoder with a self-supervised method on a dataset's training images "
        "(labels unused) and save its weights as safetensors, loadable by `art-ssl audit --encoder`.",
    )
    pre.add_argument("--method", default="simclr", choices=METHOD_NAMES, help="SSL method")
    pre.add_argument(
        "--data",
        default="fashion_mnist_subset",
        type=_task_name,
        metavar="DATASET",
        help=f"dataset: {', '.join(TASK_NAMES)} (- or _ alike)",
    )
    pre.add_argument("--root", default=None, help="dataset folder for on-disk datasets (default: the loader's)")
    pre.add_argument("--size", type=_int_at_least(8), default=64, help="image side")
    pre.add_argument("--n-train", type=_int_at_least(2), default=None, help="training images (default: all)")
    pre.add_argument("--epochs", type=_int_at_least(1), default=10, help="pre-training epochs")
    pre.add_argument("--batch-size", type=_int_at_least(2), default=256, help="batch size (contrastive: >= 2)")
    pre.add_argument(
        "--arch",
        default="zoo_resnet18",
        choices=[
            "zoo_resnet18",
            "resnet18",
            "resnet18_cifar",
            "resnet34",
            "resnet34_cifar",
            "resnet50",
            "resnet50_cifar",
        ],
        help="architecture (torchvision key layout for resnetNN[_cifar])",
    )
    pre.add_argument(
        "--channels",
        type=int,
        default=None,
        choices=[1, 3],
        help="repeat grey images to this many channels (default: the dataset's)",
    )
    pre.add_argument("--width", type=_int_at_least(1), default=16, help="zoo_resnet18 only: base width (zoo: 16)")
    pre.add_argument(
        "--stem-stride", type=int, default=2, choices=[1, 2], help="zoo_resnet18 only: stride of the first convolution"
    )
    pre.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the initialisation and the batches")
    pre.add_argument("--device", default="auto", choices=DEVICES, help="auto: the GPU when CUDA is available")
    pre.add_argument("--out", required=True, help="output .safetensors file")
    pre.add_argument(
        "--checkpoint-dir",
        default=None,
        help="save the training state after every epoch; run again with the same folder to resume",
    )
    pre.add_argument(
        "--amp",
        default="auto",
        choices=["auto", "on", "off"],
        help="bf16 mixed precision (auto: only where measured faster)",
    )
    pre.add_argument(
        "--augmentation",
        default="kornia",
        choices=["kornia", "batched"],
        help="views: kornia (the reference) or batched (same distributions, fewer operations: for GPUs)",
    )
    pre.set_defaults(func=_pretrain)

    from art_ssl.audit_names import DEFENCES

    defend = command(
        "defend",
        "fine-tune an encoder + head with a defence",
        "Fine-tune an encoder and a linear head with one defence on one downstream task; write the defended "
        "encoder (--out, .safetensors with metadata) and the head (<out>.head.safetensors, with the test BA/RA). "
        "ZePAD writes its victim MPAE encoder to --out and the whole fused model to <out>.zepad.safetensors "
        "(art_ssl.defences.load_zepad reads it). "
        "Data-parallel under torchrun: torchrun --standalone --nproc_per_node=N -m art_ssl defend ...",
    )
    defend.add_argument("--encoder", required=True, help="zoo name or encoder file")
    defend.add_argument("--defence", required=True, choices=DEFENCES, help="defence")
    defend.add_argument("--data", default="fashion-mnist-subset", help="task, as the audit's --data")
    defend.add_argument("--size", type=_int_at_least(8), default=64, help="image side")
    defend.add_argument("--n-train", type=_int_at_least(2), default=None, help="training images (default: all)")
    defend.add_argument("--n-test", type=_int_at_least(1), default=None, help="test images (default: all)")
    defend.add_argument("--epochs", type=_int_at_least(1), default=3, help="training epochs")
    defend.add_argument("--batch-size", type=_int_at_least(2), default=256, help="global batch size")
    defend.add_argument("--pgd-steps", type=_int_at_least(1), default=5, help="training PGD steps")
    defend.add_argument("--eps", type=_budget, default=8.0, help="L-inf budget of the test RA, in /255")
    defend.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the head and the batches")
    defend.add_argument("--device", default="auto", choices=DEVICES, help="auto: the GPU when CUDA is available")
    defend.add_argument("--out", required=True, help="output .safetensors file (the defended encoder)")
    defend.add_argument(
        "--checkpoint-dir",
        default=None,
        help="save the training state after every epoch; run again with the same folder to resume",
    )
    defend.add_argument(
        "--amp", default="auto", choices=["auto", "on", "off"], help="bf16 mixed precision (auto: where faster)"
    )
    _add_zepad_options(defend)
    defend.add_argument(
        "--zepad-head-epochs", type=_int_at_least(1), default=10, help="epochs of each ZePAD branch head"
    )
    _add_encoder_options(defend)
    defend.set_defaults(func=_defend)

    conv = command(
        "convert",
        "checkpoint (solo-learn, MoCo, BadEncoder, ...) -> .safetensors with metadata",
        "Read an encoder checkpoint in any layout `art_ssl.zoo.load_encoder` knows and write it as a "
        ".safetensors file whose metadata (architecture, input shape, mean/std, SSL method) lets "
        "`art-ssl audit --encoder` load it with no other flag.",
    )
    conv.add_argument("source", help="checkpoint file (.pt/.pth/.pth.tar/.ckpt/.safetensors)")
    conv.add_argument("--out", required=True, help="output .safetensors file")
    conv.add_argument(
        "--input-shape",
        type=int,
        nargs=3,
        default=None,
        metavar=("C", "H", "W"),
        help="input shape (default: metadata, else the architecture's usual input)",
    )
    conv.add_argument("--method", default=None, help="SSL method that trained it (recorded in the metadata)")
    _add_encoder_options(conv)
    conv.set_defaults(func=_convert)

    audit = command(
        "audit",
        "robustness audit of encoders: attacks x defences downstream -> results.csv, report.md/.html",
        "Audit pre-trained encoders: for each downstream task and defence (how the downstream model is trained), "
        "the benign accuracy (BA), the robust accuracy (RA) under downstream-agnostic universal perturbations "
        "crafted on the encoder alone and under white-box attacks on the downstream model, and the backdoor attack "
        "success rate (ASR) of backdoored zoo encoders. Finished cells are appended to OUT/results.csv, each keyed "
        "by a hash of everything that produced it; run the same command again to resume. A rerun with other "
        "settings computes its own cells beside the old rows, and its report shows only them. Without arguments: a "
        "reduced audit of simclr_r18 and its backdoored copy on the shipped Fashion-MNIST subset (~5 min on 2 CPU "
        "cores).",
    )
    audit.lazy_epilog = _audit_epilog
    audit.add_argument(
        "--encoder",
        nargs="+",
        default=AUDIT_DEFAULTS["encoder"],
        help="zoo names, checkpoint files (.safetensors, .pt, .pth, .pth.tar, .ckpt) or Hugging Face "
        "model folders; see --arch/--mean/--std/--key-prefix/--trust-code",
    )
    audit.add_argument("--data", nargs="+", default=AUDIT_DEFAULTS["data"], help="downstream datasets (see below)")
    audit.add_argument(
        "--attacks", nargs="+", default=AUDIT_DEFAULTS["attacks"], help="attacks (see below; repeated names run once)"
    )
    audit.add_argument(
        "--defences",
        nargs="+",
        default=AUDIT_DEFAULTS["defences"],
        help="how the downstream model is trained (see below; none: a head on the frozen encoder)",
    )
    audit.add_argument(
        "--eps", nargs="+", type=_budget, default=AUDIT_DEFAULTS["eps"], help="budgets in 1/255 units, in (0, 255]"
    )
    audit.add_argument("--out", default="audit", help="output folder (results.csv, report.md, report.html, PNGs)")
    audit.add_argument(
        "--n-train", type=_int_at_least(0, " (0: all)"), default=2000, help="downstream training images (0: all)"
    )
    audit.add_argument(
        "--n-test", type=_int_at_least(0, " (0: all)"), default=1000, help="downstream test images (0: all)"
    )
    audit.add_argument(
        "--epochs", type=_int_at_least(1), default=2, help="epochs of each defence (a frozen-encoder head: >= 10)"
    )
    audit.add_argument(
        "--task-epochs",
        nargs="+",
        default=[],
        metavar="TASK=EPOCHS",
        help="epochs of a task instead of --epochs (e.g. digits=10: a small task needs more epochs)",
    )
    audit.add_argument(
        "--anneal-epochs",
        type=_int_at_least(0, " (0: none)"),
        default=0,
        help="the encoder fine-tuning defences run their last N epochs at 0.1x their learning rates (the step "
        "decay of TRADES' and MART's codes); fewer than each task's epochs",
    )
    audit.add_argument(
        "--attack-eps",
        nargs="+",
        default=[],
        metavar="ATTACK=EPS[,EPS]",
        help="budgets of an attack instead of --eps, in 1/255 units (e.g. autoattack=2)",
    )
    audit.add_argument(
        "--transfer-encoder",
        default=None,
        help="encoder that transfer:<attack> DAEs are crafted on (default: the first clean zoo encoder not audited)",
    )
    audit.add_argument("--batch-size", type=_int_at_least(1), default=256, help="batch size of the defences")
    audit.add_argument("--pgd-steps", type=_int_at_least(1), default=5, help="PGD steps inside adversarial defences")
    audit.add_argument("--whitebox-n", type=_int_at_least(1), default=100, help="test images under white-box attacks")
    audit.add_argument("--surrogate-n", type=_int_at_least(1), default=2000, help="attacker's unlabelled images")
    audit.add_argument(
        "--surrogate-data",
        default=None,
        metavar="DATA",
        help="where the attacker's images come from, as --data spells it (default: the first --data)",
    )
    audit.add_argument(
        "--gen-epochs", type=_int_at_least(1), default=5, help="AdvEncoder generator epochs (official 20)"
    )
    audit.add_argument(
        "--sign-epochs", type=_int_at_least(1), default=3, help="PAP/SSP passes over the attacker's images"
    )
    audit.add_argument("--size", type=_int_at_least(8), default=64, help="image side (the papers' 64)")
    audit.add_argument("--seed", type=_int_at_least(0), nargs="+", default=[0], help="one run per seed")
    _add_zepad_options(audit)
    audit.add_argument(
        "--max-ba-cost",
        type=_points,
        default=2.0,
        help="the verdict's rule: best defence = highest "
        "mean DAE RA among those losing at most this many points of BA against 'none'",
    )
    audit.add_argument("--device", default="auto", choices=DEVICES, help="auto: the GPU when CUDA is available")
    audit.add_argument(
        "--amp",
        default="auto",
        choices=["auto", "on", "off"],
        help="bf16 mixed precision of defences and attacks (auto: only where measured faster)",
    )
    audit.add_argument("--backend", default="local", choices=["local", "ray"], help="ray: one Ray task per job")
    audit.add_argument("--ray-address", default=None, help="existing Ray cluster (default: a local instance)")
    _add_encoder_options(audit)
    audit.set_defaults(func=_audit)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for a user error, with one ``error:`` line on stderr)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("error: interrupted; finished cells are kept, the same command resumes", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if args.debug:
            raise
        print(f"error: {_cli_message(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # an internal failure: still one line, the traceback with --debug
        if args.debug:
            raise
        print(
            f"error: internal error ({type(err).__name__}: {_cli_message(err)}); rerun with --debug for the traceback",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
