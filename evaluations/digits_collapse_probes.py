"""
Why PGD-AT and MART collapse on digits (issue 16): small probes of the candidate causes, and the embedding-space
margin of the zoo encoder on digits and Fashion-MNIST.

A probe fine-tunes ``simclr_r18`` + the papers' MLP head (``build_victim``, seed 0) on all 1,257 digits at 64x64
with PGD-AT (or MART) and one change from the papers' recipe (eps 8/255, step eps/4, PGD-3 here to keep a
probe at a minute or two, validation PGD-3 on 300 test images; no budget warm-up unless the probe says so). Per
optimiser step it also records, in eval mode on the clean batch, the accuracy, the spread of the logits across the
batch (``logit_std``: a collapsed model gives the same logits to every input) and the number of classes predicted.

    python evaluations/digits_collapse_probes.py --probes base eps1 eps4 bn_frozen attack_train_mode \
        encoder_lr_1e-5 wd0 batch64 ramp10 ramp20 ramp40 probe_ramp20 mart_ramp20 mart_ramp40 --epochs 3 \
        --out evaluations/results/digits_collapse_probes.csv
    python evaluations/digits_collapse_probes.py --margin     # the embedding-space margin, printed

Probes: ``base`` (the papers' recipe); ``epsK`` (budget K/255); ``bn_frozen`` (the encoder's BatchNorm layers in
eval mode during training: running statistics neither used from the batch nor updated); ``attack_train_mode``
(the inner PGD in train mode, as Madry's code, instead of eval mode as the official TRADES/MART code);
``encoder_lr_1e-5``; ``wd0`` (no weight decay); ``batch64``; ``rampK`` (the training budget grows linearly over
the first K optimiser steps, ``(s + 1) / K``); ``probe_rampK`` (the same after a clean-probe head,
``head_init="probe"``); ``mart_rampK`` (MART with that ramp). ``--epochs`` applies to every probe except the ramps,
which run ``--ramp-epochs``. Rows are appended to ``--out`` (one per probe and epoch; a finished probe is skipped).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from art_ssl.core.modes import evaluating
from art_ssl.core.pgd import pgd_linf
from art_ssl.data import load_task
from art_ssl.defences.trainer import FineTuningTrainer, MARTTrainer
from art_ssl.evaluation import build_victim
from art_ssl.zoo import load_encoder


def probe_settings(name: str) -> dict:
    """The probe's trainer, keyword changes and patches."""
    trainer, name = ("mart", name[5:]) if name.startswith("mart_") else ("pgd_at", name)
    setting: dict = {"trainer": trainer, "kwargs": {}, "ramp_steps": 0, "bn_frozen": False, "attack_train": False}
    if name.startswith("probe_"):
        setting["kwargs"]["head_init"] = "probe"
        name = name[6:]
    if name == "base":
        pass
    elif name.startswith("eps"):
        setting["kwargs"]["eps"] = int(name[3:]) / 255
    elif name.startswith("ramp"):
        setting["ramp_steps"] = int(name[4:])
    elif name == "bn_frozen":
        setting["bn_frozen"] = True
    elif name == "attack_train_mode":
        setting["attack_train"] = True
    elif name.startswith("encoder_lr_"):
        setting["kwargs"]["encoder_lr"] = float(name[11:])
    elif name == "wd0":
        setting["kwargs"]["weight_decay"] = 0.0
    elif name.startswith("batch"):
        setting["kwargs"]["batch_size"] = int(name[5:])
    else:
        raise ValueError(f"Unknown probe {name!r}.")
    return setting


def freeze_batchnorm(model: torch.nn.Module) -> None:
    """``model.train()`` leaves the encoder's BatchNorm layers in eval mode."""
    train = model.train

    def train_with_frozen_bn(mode: bool = True):
        train(mode)
        if mode:
            for module in model.encoder.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return model

    model.train = train_with_frozen_bn


class TrainModePGD:
    """Mixin: the trainer's inner PGD without the switch to eval mode (BatchNorm on the batch, running statistics
    updated)."""

    _inner_eval_mode = False


class LinearRamp:
    """Mixin: the training PGD's budget at ``min(1, (s + 1) / ramp_steps)`` of the full one at step ``s`` (from 0)."""

    ramp_steps = 1

    def _before_step(self, step, epoch, nb_epochs, optimizers):
        self._eps_scale = min(1.0, (step + 1) / self.ramp_steps)


class RecordSteps:
    """Mixin: after each training batch's loss, the batch's accuracy, logit spread and number of classes predicted
    (eval mode, no gradient) go to ``step_records``."""

    step_records: list[dict]

    def _batch_loss(self, x, y):
        loss = super()._batch_loss(x, y)
        with torch.no_grad(), evaluating(self.model):
            logits = self._logits(x)
        self.step_records.append(
            {
                "acc": float((logits.argmax(1) == y).float().mean()),
                "logit_std": float(logits.std(0).mean()),
                "classes_predicted": int(logits.argmax(1).unique().numel()),
            }
        )
        return loss


def probe_trainer(base: type, train_mode_pgd: bool, ramp_steps: int) -> type:
    """``base`` with the probe's changes mixed in (a subclass: the trainer's internals are never patched on an
    instance); a new class, and so a new ``step_records`` list, per call."""
    mixins = (RecordSteps, *([TrainModePGD] if train_mode_pgd else []), *([LinearRamp] if ramp_steps else []))
    return type(f"{base.__name__}Probe", (*mixins, base), {"ramp_steps": ramp_steps or 1, "step_records": []})


def run_probe(name: str, task, public, args) -> pd.DataFrame:
    setting = probe_settings(name)
    victim = build_victim(public, task.nb_classes, seed=0)
    eps = setting["kwargs"].pop("eps", 8 / 255)
    kwargs = {
        "nb_epochs": args.ramp_epochs if setting["ramp_steps"] else args.epochs,
        "batch_size": 256,
        "eps": eps,
        "step_size": eps / 4,
        "pgd_steps": 3,
        "validation_pgd_steps": 3,
        "eps_warmup_fraction": 0.0,  # the papers' recipe; the ramp probes patch their own schedule in
        "seed": 0,
        "verbose": False,
        **setting["kwargs"],
    }
    base = FineTuningTrainer if setting["trainer"] == "pgd_at" else MARTTrainer
    cls = probe_trainer(base, setting["attack_train"], setting["ramp_steps"])
    trainer = cls(victim, adversarial=True, **kwargs) if base is FineTuningTrainer else cls(victim, **kwargs)
    if setting["bn_frozen"]:
        freeze_batchnorm(trainer.model)
    steps = trainer.step_records
    start = time.perf_counter()
    trainer.fit(task.x_train, task.y_train, validation_data=(task.x_test, task.y_test))
    hist = trainer.history_[["epoch", "loss", "val_ba", "val_ra"]].copy()
    per_epoch = -(-len(task.x_train) // kwargs["batch_size"])
    last = [steps[min(len(steps), e * per_epoch) - 1] for e in hist["epoch"]]  # the epoch's last step
    hist["train_logit_std"] = [s["logit_std"] for s in last]
    hist["train_classes_predicted"] = [s["classes_predicted"] for s in last]
    return hist.assign(probe=name, seconds_total=time.perf_counter() - start)


def embedding_margin(args) -> None:
    """How far an 8/255 (and 2/255) PGD moves the frozen zoo encoder's embedding, against the class structure."""
    public = load_encoder(args.encoder, "cpu")
    model = public.model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    for name in ("digits", "fashion_mnist_subset"):
        task = load_task(name, size=64, n_train=400, n_test=50, seed=0)
        x, y = torch.from_numpy(task.x_train[:400]), torch.from_numpy(task.y_train[:400])  # the first 400
        with torch.no_grad():
            z = model(x).flatten(1)
        centroids = torch.stack([z[y == c].mean(0) for c in range(task.nb_classes)])
        dist = torch.cdist(z, centroids)
        own = dist.gather(1, y[:, None]).squeeze(1)
        other = dist.masked_fill(torch.nn.functional.one_hot(y, task.nb_classes).bool(), float("inf")).min(1).values
        spread = (z - z.mean(0)).norm(dim=1).mean() / z.mean(0).norm()
        print(
            f"{name}: embedding spread around the mean / norm of the mean {float(spread):.2f}; median distance to the "
            f"nearest other class centroid minus the own one {float((other - own).median()):.2f}"
        )
        if name == "digits":
            full = load_task(name, size=64, n_train=2000, n_test=50, seed=0)  # all 1,257 training images
            flat = full.x_train.reshape(len(full.x_train), -1)
            nearest = [float(abs(flat[full.y_train != full.y_train[i]] - flat[i]).max(1).min()) for i in range(300)]
            print(f"  pixel space: nearest other-class image at L-inf distance >= {min(nearest):.2f} (first 300)")
        xs, zs = x[:64], z[:64]
        for eps in (2 / 255, 8 / 255):
            x_adv = pgd_linf(
                lambda xa, zs=zs: ((model(xa).flatten(1) - zs) ** 2).sum(),
                xs,
                eps=eps,
                step_size=eps / 4,
                steps=5,
                random_start="uniform",
                generator=torch.Generator().manual_seed(0),
            )
            with torch.no_grad():
                moved = (model(x_adv).flatten(1) - zs).norm(dim=1).median()
            print(f"  PGD-5 at eps {eps * 255:.0f}/255 moves the embedding by {float(moved):.2f} (median)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", nargs="*", default=[])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--ramp-epochs", type=int, default=6)
    parser.add_argument("--encoder", default="simclr_r18")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--margin", action="store_true", help="print the embedding-space margin and stop")
    parser.add_argument("--out", default="evaluations/results/digits_collapse_probes.csv")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.margin:
        embedding_margin(args)
        return
    task = load_task("digits", size=64, n_train=2000, n_test=300, seed=0)
    public = load_encoder(args.encoder, "cpu")
    try:
        done = pd.read_csv(args.out)
    except FileNotFoundError:
        done = pd.DataFrame(columns=["probe"])
    for name in args.probes:
        if (done["probe"] == name).any():
            continue
        rows = run_probe(name, task, public, args)
        done = pd.concat([done, rows], ignore_index=True)
        done.to_csv(args.out, index=False)
        last = rows.iloc[-1]
        print(f"{name}: val_ba {last['val_ba']:.3f} val_ra {last['val_ra']:.3f} ({last['seconds_total']:.0f} s)")


if __name__ == "__main__":
    main()
