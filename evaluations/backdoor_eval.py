"""
Backdoored encoders downstream (issue: BadEncoder, super-fine-tuning and distillation), on the benchmark protocol
(DESIGN §6): 64x64, the backdoored zoo encoder ``simclr_r18_badencoder`` (BadEncoder on ``simclr_r18``, one target
per task: see ``art_ssl.zoo.backdoor_targets``), downstream Fashion-MNIST and digits.

The downstream user trains a head 512-512-C (dropout 0.2) on the L2-normalised embeddings of the frozen encoder,
as BadEncoder's downstream classifiers (official ``predict_feature``); that is the ``none`` row (``none`` /
``raw-feature head``: the same on raw embeddings, whose norm the cosine-trained backdoor inflates). Each defence
starts from that model:

- ``finetune``: plain fine-tuning of encoder and head on the clean downstream data (Adam, encoder 1e-4, head 5e-3);
- ``super_finetune``: :class:`SuperFineTuningTrainer` with its default constants, same data and epochs;
- ``genaf``: :class:`GenAFTrainer` (both stages; it claims to defend backdoors unmodified), same data and epochs;
- ``distillation``: :class:`EncoderDistillation` cleans the *encoder* with 5% of the Fashion-MNIST training images
  (unlabelled, the paper's fraction of the pre-training data), then a new head is trained on the frozen student.
  The paper's best options (fine-tuned teacher, warm-up student, attention loss) and ablations of one option at a
  time; the teacher fine-tuning and the student warm-up are computed once and shared.

Metrics (``art_ssl.metrics``): CA (clean encoder + head), BA (the row's model), ASR on triggered test images of the
other classes (``ASR``) and of all classes (``ASR_all``). Backdoor sequela (Sha et al.): the row's model is
fine-tuned further on a poisoned training set (``--poison-rate`` of the images triggered and relabelled to the
target) one epoch at a time; ``sequela_epochs`` = epochs until ASR >= 0.9 again (``>N`` if never within N).

    python evaluations/backdoor_eval.py                    # reduced CPU protocol (defaults)
    python evaluations/backdoor_tables.py                  # -> evaluations/results/backdoor_64.md
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
from presets import add_device_argument, add_task_epochs_argument, defence_trainer, task_epochs
from safetensors.torch import load_file, save_file

from art_ssl.data import load_task
from art_ssl.defences.trainer import FineTuningTrainer
from art_ssl.defences.transformer import EncoderDistillation
from art_ssl.estimators import PyTorchEncoder
from art_ssl.evaluation import ResultStore, build_victim
from art_ssl.evaluation.registry import make_defence_trainer
from art_ssl.evaluation.sources import load_encoder_spec
from art_ssl.metrics import attack_success_rate, benign_accuracy
from art_ssl.zoo import backdoor_targets, encoder_info

DEFENCES = ("none", "finetune", "super_finetune", "genaf", "distillation")
# (teacher, student, loss): the paper's best first, then one option changed at a time.
DISTILLATION_VARIANTS = [
    ("finetuned", "warmup", "attention"),
    ("poisoned", "warmup", "attention"),
    ("finetuned", "random", "attention"),
    ("finetuned", "poisoned", "attention"),
    ("finetuned", "warmup", "mse"),
    ("finetuned", "warmup", "kl"),
    ("finetuned", "warmup", "cosine"),
]
CHECKPOINTS = "evaluations/checkpoints"  # distilled students, reused on restart and by backdoor_probe.py


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="simclr_r18_badencoder", help="backdoored zoo encoder")
    parser.add_argument("--tasks", nargs="*", default=["fashion_mnist", "digits"])
    parser.add_argument("--defences", nargs="*", default=list(DEFENCES), choices=DEFENCES)
    parser.add_argument("--n-train", type=int, default=4000, help="downstream training images (0: all)")
    parser.add_argument("--n-test", type=int, default=2000, help="downstream test images (0: all)")
    parser.add_argument("--head-epochs", type=int, default=10, help="at --n-train images; scaled to the same steps")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of every fine-tuning defence")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--pgd-steps", type=int, default=5, help="Gen-AF's inner PGD steps")
    parser.add_argument("--sensitivity-samples", type=int, default=1000)
    parser.add_argument("--sensitivity-epochs", type=int, default=3)
    parser.add_argument("--genaf-stage2-epochs", type=int, default=50, help="Gen-AF's stage-2 epochs (its default)")
    parser.add_argument("--distill-fraction", type=float, default=0.05, help="of the Fashion-MNIST training set")
    parser.add_argument("--distill-epochs", type=int, default=10)
    parser.add_argument("--teacher-epochs", type=int, default=5)
    parser.add_argument("--warmup-epochs", type=int, default=10)
    parser.add_argument(
        "--variants", type=int, nargs="*", default=None, help="indices into DISTILLATION_VARIANTS (default: all)"
    )
    parser.add_argument("--sequela-tasks", nargs="*", default=["fashion_mnist"])
    parser.add_argument("--sequela-max-epochs", type=int, default=10)
    parser.add_argument("--poison-rate", type=float, default=0.1)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--out", default="evaluations/results/backdoor_64.csv")
    add_task_epochs_argument(parser)
    add_device_argument(parser)
    parser.add_argument("--checkpoints", default=CHECKPOINTS, help="folder of the distilled students (.safetensors)")
    return parser.parse_args()


def frozen_head_model(model: PyTorchEncoder | torch.nn.Module, task, args, normalize: bool = True):
    """The downstream user's model: the encoder (frozen) and a 512-512-C head trained on clean data, on
    L2-normalised embeddings as BadEncoder's downstream classifiers (``normalize=False``: raw embeddings)."""
    classifier = build_victim(
        model,
        task.nb_classes,
        seed=args.seed,
        device_type=args.device,
        input_shape=tuple(task.x_train.shape[1:]),  # a distilled student is a bare module
        normalize_input=normalize,
    )
    # the same number of optimisation steps on every task: digits (1,257 images) gets ~32 epochs for 10 at 4,000
    epochs = max(args.head_epochs, int(np.ceil(args.head_epochs * args.n_train / len(task.x_train))))
    make_defence_trainer(
        "none", classifier, epochs, batch_size=args.batch_size, seed=args.seed, verbose=args.verbose
    ).fit(task.x_train, task.y_train)
    return classifier


def scores(classifier, task, target: dict) -> dict:
    trigger, cls = target["trigger"], target["target"]
    pred = classifier.predict(task.x_test, batch_size=512).argmax(1)
    pred_bd = classifier.predict(trigger.apply(task.x_test), batch_size=512).argmax(1)
    return {
        "BA": benign_accuracy(pred, task.y_test),
        "ASR": attack_success_rate(pred_bd, cls, task.y_test, exclude_target_class=True),
        "ASR_all": attack_success_rate(pred_bd, cls, task.y_test, exclude_target_class=False),
    }


def sequela(classifier, task, target: dict, args) -> str:
    """Poisoned fine-tuning epochs until ASR >= 0.9 (whole model, plain fine-tuning, one epoch per call)."""
    rng = np.random.default_rng(args.seed)
    idx = rng.choice(len(task.x_train), int(round(args.poison_rate * len(task.x_train))), replace=False)
    x, y = task.x_train.copy(), task.y_train.copy()
    x[idx], y[idx] = target["trigger"].apply(x[idx]), target["target"]
    model = copy.deepcopy(classifier)
    for epoch in range(1, args.sequela_max_epochs + 1):
        FineTuningTrainer(
            model,
            nb_epochs=1,
            batch_size=args.batch_size,
            validation_pgd_steps=0,
            seed=args.seed + epoch,
            verbose=args.verbose,
        ).fit(x, y)
        if scores(model, task, target)["ASR"] >= 0.9:
            return str(epoch)
    return f">{args.sequela_max_epochs}"


def distilled_students(backdoored: PyTorchEncoder, x_clean: np.ndarray, args):
    """Yield ``(variant label, cleaned encoder model, seconds)`` for each distillation variant, cached on disk."""
    variants = [DISTILLATION_VARIANTS[i] for i in (args.variants or range(len(DISTILLATION_VARIANTS)))]
    common = {
        "data_fraction": args.distill_fraction,
        "nb_epochs": args.distill_epochs,
        "seed": args.seed,
        "teacher_epochs": args.teacher_epochs,
        "warmup_epochs": args.warmup_epochs,
        "verbose": args.verbose,
    }
    shared: dict[str, object] = {}
    checkpoints = Path(args.checkpoints)
    checkpoints.mkdir(parents=True, exist_ok=True)
    for teacher, student, loss in variants:
        label = f"teacher={teacher} student={student} loss={loss}"
        path = checkpoints / (
            f"distill_{args.encoder}_{teacher}_{student}_{loss}_e{args.distill_epochs}"
            f"_t{args.teacher_epochs}_w{args.warmup_epochs}_f{args.distill_fraction}.safetensors"
        )
        if path.exists():
            model = copy.deepcopy(backdoored.model)
            model.load_state_dict(load_file(str(path)))
            yield label, model.eval(), float("nan")
            continue
        start = time.perf_counter()
        defence = EncoderDistillation(backdoored, teacher=teacher, student=student, loss=loss, **common)
        if teacher in shared:  # the same teacher (same seed) as an earlier variant: reuse it
            defence.use_teacher(shared[teacher])
        else:
            defence.fit(x_clean)
            shared[teacher] = defence.teacher_
        given = None
        if student == "warmup":  # one warm-up student (seeded, so identical), copied for every variant using one
            if "warmup" not in shared:
                shared["warmup"] = defence.initial_student(x_clean)
            given = backdoored.with_model(copy.deepcopy(shared["warmup"]))
        cleaned = defence(x_clean, transformed_classifier=given)
        save_file({k: v.detach().contiguous() for k, v in cleaned.model.state_dict().items()}, str(path))
        yield label, cleaned.model.eval(), time.perf_counter() - start


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    out = ResultStore(args.out, ("task", "defence", "variant"))
    info = encoder_info(args.encoder)
    backdoored = load_encoder_spec(args.encoder, args.size, args.device)
    clean = load_encoder_spec(info["base_encoder"], args.size, args.device)
    targets = {t["task"]: t for t in backdoor_targets(args.encoder)}
    tasks = {
        name: load_task(name, size=args.size, n_train=args.n_train or None, n_test=args.n_test or None, seed=args.seed)
        for name in args.tasks
    }
    undefended, ca = {}, {}
    for name, task in tasks.items():
        ca[name] = scores(frozen_head_model(clean, task, args), task, targets[name])
        undefended[name] = frozen_head_model(backdoored, task, args)

    def record(name: str, defence: str, variant: str, classifier, seconds: float) -> None:
        task, target = tasks[name], targets[name]
        row = {
            "task": name,
            "defence": defence,
            "variant": variant,
            "target": target["target"],
            "CA": ca[name]["BA"],
            "ASR_clean_encoder": ca[name]["ASR"],
            **scores(classifier, task, target),
            "train_seconds": round(seconds, 1),
        }
        if name in args.sequela_tasks:
            row["sequela_epochs"] = sequela(classifier, task, target, args)
        out.append([row])
        print(row, flush=True)

    for name, task in tasks.items():
        if "none" in args.defences and not out.has(task=name, defence="none", variant="raw-feature head"):
            record(name, "none", "raw-feature head", frozen_head_model(backdoored, task, args, False), 0.0)
        epochs = task_epochs(args, name, args.epochs)
        for defence in args.defences:
            if defence == "distillation" or out.has(task=name, defence=defence, variant=""):
                continue
            model, start = copy.deepcopy(undefended[name]), time.perf_counter()
            if defence != "none":  # every defence starts from the undefended downstream model
                defence_trainer(defence, model, args, epochs).fit(task.x_train, task.y_train)
            record(name, defence, "", model, time.perf_counter() - start if defence != "none" else 0.0)

    if "distillation" in args.defences:
        pending = any(
            not out.has(task=n, defence="distillation", variant=f"teacher={t} student={s} loss={loss}")
            for n in tasks
            for t, s, loss in DISTILLATION_VARIANTS
        )
        if pending:
            fmnist_train = load_task("fashion_mnist", size=args.size).x_train
            for label, student, seconds in distilled_students(backdoored, fmnist_train, args):
                for name, task in tasks.items():
                    if not out.has(task=name, defence="distillation", variant=label):
                        record(name, "distillation", label, frozen_head_model(student, task, args), seconds)


if __name__ == "__main__":
    main()
