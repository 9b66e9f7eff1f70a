"""
Speed benchmark of mixed precision on the CPU (issue 15; a benchmark, not a timed test): float32 against bf16 autocast,
each with and without channels-last, interleaved in one run on the same models and data, for

- a TRADES training step (PGD-10 inner maximisation, batch ``--batch``),
- a Gen-AF stage-1 training step (PGD-10 + the genetic regulariser),
- a SimCLR pre-training step (two augmented views),
- SSP (universal feature attack at ``layer4``, the whole encoder but its pooling) steps,

on (a) the zoo's encoder (ResNet-18 width 16, stride-2 stem, 1x64x64, pre-trained ``simclr_r18``) and (b) a
full-width ResNet-18 (width 64, CIFAR stem, 3x32x32; Fashion-MNIST repeated to 3 channels, random init). Every
(task, model) is run ``--reps`` times per setting, settings interleaved (A B C D A B C D ...); the table reports the
fastest repetition (the least disturbed by the other jobs of a shared machine) as seconds per step, and its speed-up
over the first setting (float32 channels-last, the trainers' default before this benchmark). Each task starts
with one untimed warm-up run. Optionally ``torch.compile`` of the encoder (``--compile``) for the SimCLR step.

Then accuracy after the same training: TRADES fine-tuning of the zoo encoder + MLP head for ``--acc-epochs`` epochs
on ``--acc-n`` images, in float32 and in bf16, each evaluated in float32 (BA, and RA under PGD-10 at eps 0.031).

    python evaluations/amp_speed.py --out evaluations/results/amp_speed.md
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from art_ssl.attacks.evasion import SSP
from art_ssl.core.amp import cpu_bf16_supported, cpu_flags, cpu_has_amx
from art_ssl.core.pgd import pgd_linf
from art_ssl.data import load_task
from art_ssl.defences.trainer import GenAFTrainer, TRADESTrainer
from art_ssl.estimators import PyTorchEncoder
from art_ssl.evaluation import build_victim
from art_ssl.models import build_encoder
from art_ssl.ssl import pretrain
from art_ssl.zoo import load_encoder

SETTINGS = {  # name: (amp, channels_last)
    "fp32": (False, False),
    "fp32+CL": (False, True),
    "bf16": (True, False),
    "bf16+CL": (True, True),
}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def make_models(device: str) -> dict[str, tuple[torch.nn.Module, tuple[int, int, int]]]:
    torch.manual_seed(0)
    zoo = load_encoder("simclr_r18", device).model.cpu()
    full = build_encoder("resnet18", in_channels=3, width=64, stem_stride=1)
    return {"zoo r18 w16 1x64x64": (zoo, (1, 64, 64)), "full r18 w64 3x32x32": (full, (3, 32, 32))}


def data_for(shape: tuple[int, int, int], n: int) -> tuple[np.ndarray, np.ndarray]:
    task = load_task("fashion_mnist_subset", size=shape[1], n_train=n, n_test=10)
    x = task.x_train if shape[0] == 1 else np.repeat(task.x_train, shape[0], axis=1)
    return np.ascontiguousarray(x, dtype=np.float32), task.y_train


def classifier(encoder: torch.nn.Module, shape, device: str):
    return build_victim(encoder, 10, seed=0, device_type=device, input_shape=shape)


def time_trainer(kind, encoder, shape, x, y, amp, cl, device, batch) -> float:
    common = {
        "nb_epochs": 1,
        "batch_size": batch,
        "pgd_steps": 10,
        "validation_pgd_steps": 0,
        "verbose": False,
        "amp": amp,
        "channels_last": cl,
    }
    clf = classifier(encoder, shape, device)
    trainer = TRADESTrainer(clf, **common) if kind == "TRADES" else GenAFTrainer(clf, stages=(1,), **common)
    start = time.perf_counter()
    trainer.fit(x, y)
    return (time.perf_counter() - start) / int(np.ceil(len(x) / batch))


def time_simclr(encoder, x, amp, cl, device, batch, compile_model=False) -> float:
    enc = copy.deepcopy(encoder)
    if compile_model:
        enc.forward = torch.compile(enc.forward)
    start = time.perf_counter()
    pretrain(
        enc, x, "simclr", nb_epochs=1, batch_size=batch, device_type=device, amp=amp, channels_last=cl, verbose=False
    )
    return (time.perf_counter() - start) / (len(x) // batch)


def time_universal(encoder, shape, x, amp, cl, device, batch, steps) -> float:
    enc = copy.deepcopy(encoder).to(memory_format=torch.channels_last if cl else torch.contiguous_format)
    est = PyTorchEncoder(enc, input_shape=shape, device_type=device)
    attack = SSP(est, layer="layer4", batch_size=batch, nb_epochs=steps, max_iter=steps, verbose=False)
    attack.set_params(amp=amp)
    start = time.perf_counter()
    attack.generate(x[: batch * steps])
    return (time.perf_counter() - start) / steps


CHEAP_TASKS = ("SimCLR step", "SSP step (layer4)")


def speed(args, on_rows) -> pd.DataFrame:
    """Cheap tasks of both models first, then the adversarial trainers; ``on_rows(table)`` after every block, so a
    run stopped early still leaves the blocks it finished."""
    models = make_models(args.device)
    rows: list[dict] = []
    for cheap in (True,) if args.cheap_only else (True, False):
        for model_name, (encoder, shape) in models.items():
            done = list(rows)
            rows += speed_of_model(
                model_name, encoder, shape, args, cheap, lambda new, done=done: on_rows(pd.DataFrame(done + new))
            )
    return pd.DataFrame(rows)


def speed_of_model(model_name: str, encoder: torch.nn.Module, shape, args, cheap: bool, on_rows) -> list[dict]:
    full = model_name.startswith("full")
    batch = args.full_batch if full else args.batch
    steps = args.full_steps if full else args.steps
    x, y = data_for(shape, max(batch * steps, 2 * batch))
    xs, ys, dev = x[: batch * steps], y[: batch * steps], args.device
    tasks = {
        "SimCLR step": lambda amp, cl: time_simclr(encoder, xs, amp, cl, dev, batch),
        "SSP step (layer4)": lambda amp, cl: time_universal(encoder, shape, x, amp, cl, dev, batch, steps),
        "TRADES step (PGD-10)": lambda amp, cl: time_trainer("TRADES", encoder, shape, xs, ys, amp, cl, dev, batch),
        "Gen-AF stage-1 step (PGD-10)": lambda amp, cl: time_trainer(
            "GenAF", encoder, shape, xs, ys, amp, cl, dev, batch
        ),
    }
    rows: list[dict] = []
    for task_name, run in tasks.items():
        if (task_name in CHEAP_TASKS) != cheap:
            continue
        names = (args.cheap_settings if cheap else args.settings).split(",")
        reps = args.cheap_reps if cheap else args.reps
        times: dict[str, list[float]] = {s: [] for s in names}
        run(*SETTINGS[names[0]])  # untimed warm-up: the process's first calls create oneDNN primitives
        for rep in range(reps):
            for setting in names:
                amp, cl = SETTINGS[setting]
                times[setting].append(run(amp, cl))
                print(
                    f"{model_name} | {task_name} | {setting} | rep {rep}: {times[setting][-1]:.3f} s/step", flush=True
                )
        base = min(times[names[0]])
        for setting, values in times.items():
            rows.append(
                {
                    "model": model_name,
                    "task": task_name,
                    "setting": setting,
                    "batch": batch,
                    "steps": steps,
                    "s_per_step": min(values),
                    f"speedup_vs_{names[0]}": base / min(values),
                    "all_reps": " ".join(f"{v:.3f}" for v in values),
                }
            )
        on_rows(rows)
    if args.compile and cheap:
        rows += compile_rows(encoder, x, model_name, batch, steps, args)
        on_rows(rows)
    return rows


def compile_rows(encoder, x, model_name, batch, steps, args) -> list[dict]:
    """torch.compile (inductor) of the encoder for the SimCLR step, against eager, float32 contiguous."""
    rows = []
    try:
        start = time.perf_counter()
        first = time_simclr(encoder, x[:batch], False, True, args.device, batch, compile_model=True)
        compile_s = time.perf_counter() - start
        eager, compiled = [], []
        for _ in range(args.reps):
            eager.append(time_simclr(encoder, x[: batch * steps], False, True, args.device, batch))
            compiled.append(time_simclr(encoder, x[: batch * steps], False, True, args.device, batch, True))
        note = f"first compiled step {first:.1f} s incl. compile ({compile_s:.0f} s)"
    except Exception as err:  # noqa: BLE001 - report why compile failed instead of dying after the timings
        return [
            {
                "model": model_name,
                "task": "SimCLR step",
                "setting": "fp32+CL + torch.compile",
                "batch": batch,
                "steps": steps,
                "s_per_step": float("nan"),
                "speedup_vs_fp32+CL": float("nan"),
                "all_reps": f"failed: {type(err).__name__}: {str(err)[:100]}",
            }
        ]
    for setting, values in (("fp32+CL eager (compile A/B)", eager), ("fp32+CL + torch.compile", compiled)):
        rows.append(
            {
                "model": model_name,
                "task": "SimCLR step",
                "setting": setting,
                "batch": batch,
                "steps": steps,
                "s_per_step": min(values),
                "speedup_vs_fp32+CL": min(eager) / min(values),
                "all_reps": " ".join(f"{v:.3f}" for v in values)
                + ("; " + note if "compile" in setting and "eager" not in setting else ""),
            }
        )
    return rows


def accuracy(args) -> pd.DataFrame:
    """TRADES fine-tuning in fp32 and bf16 (same seed, data, steps), both evaluated in float32."""
    task = load_task("fashion_mnist_subset", size=64, n_train=args.acc_n, n_test=args.acc_test)
    encoder = load_encoder("simclr_r18", args.device).model.cpu()
    rows = []
    for setting in args.acc_settings.split(","):
        amp, cl = SETTINGS[setting]
        clf = classifier(encoder, (1, 64, 64), args.device)
        trainer = TRADESTrainer(
            clf,
            nb_epochs=args.acc_epochs,
            batch_size=args.batch,
            validation_pgd_steps=0,
            verbose=False,
            amp=amp,
            channels_last=cl,
        )
        start = time.perf_counter()
        trainer.fit(task.x_train, task.y_train)
        seconds = time.perf_counter() - start
        ba, ra = evaluate(
            clf.model.eval(), torch.from_numpy(task.x_test).to(clf.device), torch.from_numpy(task.y_test).to(clf.device)
        )
        rows.append(
            {
                "training": setting,
                "epochs": args.acc_epochs,
                "train_images": args.acc_n,
                "test_images": args.acc_test,
                "BA": ba,
                "RA (PGD-10, eps 0.031)": ra,
                "train_seconds": seconds,
            }
        )
        print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 200) -> tuple[float, float]:
    """Float32 BA and RA (PGD-10 on the cross-entropy, eps 0.031, step 0.007, uniform start, seed 0)."""
    gen = torch.Generator().manual_seed(0)
    clean = adv = 0
    for i in range(0, len(x), batch):
        xb, yb = x[i : i + batch], y[i : i + batch]
        x_adv = pgd_linf(
            lambda xa, yb=yb: F.cross_entropy(model(xa), yb, reduction="sum"),
            xb,
            eps=0.031,
            step_size=0.007,
            steps=10,
            random_start="uniform",
            generator=gen,
            clip_values=(0, 1),
        )
        with torch.no_grad():
            clean += int((model(xb).argmax(1) == yb).sum())
            adv += int((model(x_adv).argmax(1) == yb).sum())
    return clean / len(x), adv / len(x)


def speed_text(table: pd.DataFrame) -> list[str]:
    return [
        "",
        "Seconds per step (fastest of the interleaved repetitions) and speed-up over the first setting:",
        "",
        table.to_markdown(index=False, floatfmt=".3g"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--batch", type=int, default=16, help="batch of the zoo model")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per repetition, zoo model")
    parser.add_argument("--full-batch", type=int, default=4, help="batch of the full-width ResNet-18")
    parser.add_argument("--full-steps", type=int, default=1, help="timed steps per repetition, full-width model")
    parser.add_argument("--cheap-reps", type=int, default=2, help="repetitions per setting, SimCLR and SSP")
    parser.add_argument("--reps", type=int, default=1, help="repetitions per setting, TRADES and Gen-AF")
    parser.add_argument(
        "--cheap-settings",
        default="fp32+CL,fp32,bf16+CL,bf16",
        help="settings timed for SimCLR and SSP (the first is the speed-up's reference)",
    )
    parser.add_argument(
        "--settings",
        default="fp32+CL,fp32,bf16+CL,bf16",
        help="settings timed for TRADES and Gen-AF (the first is the speed-up's reference)",
    )
    parser.add_argument("--cheap-only", action="store_true", help="only the SimCLR and SSP steps")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--acc-settings", default="fp32+CL,bf16+CL", help="trainings compared for accuracy")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile on the SimCLR step")
    parser.add_argument("--acc-n", type=int, default=256)
    parser.add_argument("--acc-test", type=int, default=200)
    parser.add_argument("--acc-epochs", type=int, default=1)
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--out", default="evaluations/results/amp_speed.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    flags = cpu_flags()
    header = (
        f"CPU: {cpu_name()}, {torch.get_num_threads()} threads; flags: avx512_bf16={'avx512_bf16' in flags}, "
        f"amx_bf16={cpu_has_amx()}; oneDNN bf16 kernels: {cpu_bf16_supported()}; torch {torch.__version__}"
    )
    print(header, flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    parts = [header, f"Command: python evaluations/amp_speed.py {' '.join(sys.argv[1:])}"]

    def write_speed(table: pd.DataFrame) -> None:
        table.to_csv(Path(args.out).with_suffix(".csv"), index=False)
        Path(args.out).write_text("\n".join(parts + speed_text(table)) + "\n")

    if not args.skip_speed:
        parts += speed_text(speed(args, write_speed))
    if not args.skip_accuracy:
        acc = accuracy(args)
        parts += [
            "",
            "Accuracy after the same TRADES training (zoo simclr_r18 + MLP head, Fashion-MNIST subset 64x64),"
            " evaluated in float32:",
            "",
            acc.to_markdown(index=False, floatfmt=".3f"),
        ]
    Path(args.out).write_text("\n".join(parts) + "\n")
    print("\n".join(parts))


if __name__ == "__main__":
    main()
