"""
What the evaluation scripts share: the attack line-up with its CPU-budget settings, loading an encoder by zoo name or
file, resumable CSV output, and the threat model's DAEs (crafted once on the public encoder, cached on disk).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from art_ssl.estimators import PyTorchEncoder
from art_ssl.evaluation.registry import ENCODER_ATTACKS, UNIVERSAL_ATTACKS, AttackSettings, make_universal_attack
from art_ssl.zoo import ZOO_ARCH, build_from_info, encoder_info, list_encoders, load_encoder, load_state_dict

ATTACKS = UNIVERSAL_ATTACKS
__all__ = ["ATTACKS", "ENCODER_ATTACKS"]  # re-exported for the scripts


def add_attack_arguments(parser) -> None:
    """The attack settings every script exposes (defaults fit the 2-core CPU budget; see evaluations/README.md)."""
    parser.add_argument("--surrogate-n", type=int, default=5000, help="attacker's unlabelled Fashion-MNIST images")
    parser.add_argument("--sign-step", type=float, default=2e-4, help="PAP/SSP sign step (official 2e-4)")
    parser.add_argument("--gen-ngf", type=int, default=32, help="AdvEncoder generator width (official 128)")
    parser.add_argument("--gen-nz-batch", type=int, default=32, help="AdvEncoder noise vectors (official 256)")
    parser.add_argument("--gen-epochs", type=int, default=10, help="AdvEncoder epochs (official 20)")
    parser.add_argument("--uap-iter", type=int, default=1, help="ART UniversalPerturbation max_iter")
    parser.add_argument("--seed", type=int, default=0)
    add_device_argument(parser)


def add_device_argument(parser) -> None:
    """``--device cpu|gpu`` (ART's ``device_type``; "gpu" falls back to the CPU when CUDA is absent, as in ART)."""
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"], help="device_type of every estimator")


def add_cache_argument(parser) -> None:
    """``--cache``: the folder of the DAEs ``cached_daes`` crafts once and reuses."""
    parser.add_argument("--cache", default="evaluations/cache", help="folder of the cached DAEs (.npy)")


def add_task_epochs_argument(parser) -> None:
    """``--task-epochs digits=10``: per-task epochs. Digits has 1,257 training images (5 batches of 256): the same
    epochs as a 4,000-image task would give it a third of the optimisation steps."""
    parser.add_argument(
        "--task-epochs",
        nargs="*",
        default=["digits=10"],
        metavar="TASK=EPOCHS",
        help="epochs for these tasks instead of the default (default: digits=10)",
    )


def task_epochs(args, task: str, default: int) -> int:
    for item in args.task_epochs:
        name, _, value = item.partition("=")
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"--task-epochs takes TASK=EPOCHS with EPOCHS >= 1, got {item!r}")
        if name == task:
            return int(value)
    return default


def make_attack(name: str, encoder: PyTorchEncoder, surrogate, eps: float, args):
    """One attack of ``ATTACKS`` at budget ``eps``; ``surrogate`` is the attacker's label-free head."""
    settings = AttackSettings(
        surrogate_n=args.surrogate_n,
        sign_step=args.sign_step,
        gen_ngf=args.gen_ngf,
        gen_nz_batch=args.gen_nz_batch,
        gen_epochs=args.gen_epochs,
        uap_iter=args.uap_iter,
        seed=args.seed,
    )
    return make_universal_attack(name, encoder, eps, surrogate, settings)


def learn_noise(name: str, encoder: PyTorchEncoder, surrogate, eps: float, x_surrogate: np.ndarray, args):
    """Seeded: learn one attack's universal perturbation; returns (noise, seconds)."""
    import time

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)  # ART's UniversalPerturbation shuffles with numpy
    attack = make_attack(name, encoder, surrogate, eps, args)
    start = time.perf_counter()
    attack.generate(x_surrogate)
    return attack.noise.astype(np.float32), time.perf_counter() - start


def cached_daes(
    enc_label: str, public: PyTorchEncoder, attacks, eps_list, x_surrogate: np.ndarray, args
) -> dict[tuple[str, float], np.ndarray]:
    """The threat model's DAEs: each attack's perturbation crafted once on the *public* encoder from the attacker's
    unlabelled images (label-free surrogate head for the classifier-based attacks), cached as .npy by setting in
    ``args.cache``."""
    from art_ssl.evaluation import surrogate_classifier

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    # every attack setting is in the name: a DAE made with other budgets (e.g. --gen-epochs) is never reused
    budget = f"st{args.sign_step:g}_g{args.gen_ngf}x{args.gen_nz_batch}x{args.gen_epochs}_u{args.uap_iter}"
    noises, surrogate = {}, None
    for attack in attacks:
        for eps_255 in eps_list:
            path = cache / f"{enc_label}_{attack}_eps{eps_255:g}_n{args.surrogate_n}_s{args.seed}_{budget}.npy"
            if not path.exists():
                surrogate = surrogate or surrogate_classifier(public, x_surrogate, seed=args.seed)
                np.save(path, learn_noise(attack, public, surrogate, eps_255 / 255, x_surrogate, args)[0])
            noises[(attack, eps_255)] = np.load(path)
    return noises


def load_any_encoder(name: str, size: int, device: str = "cpu") -> tuple[str, str, PyTorchEncoder]:
    """A zoo encoder by name, or a safetensors file of the zoo's architecture (e.g. the 28x28 encoder)."""
    if name in list_encoders():
        return name, encoder_info(name)["method"], load_encoder(name, device)
    model = build_from_info({"arch": ZOO_ARCH[0], "arch_kwargs": ZOO_ARCH[1]}, load_state_dict(name))
    return Path(name).stem, "", PyTorchEncoder(model, (1, size, size), device_type=device)


def fresh_victim(public: PyTorchEncoder, nb_classes: int, args):
    """The downstream victim every defence starts from: a copy of the public encoder, fine-tunable, with the papers'
    MLP head (512-512-C, dropout 0.2) seeded by ``args.seed``."""
    import copy

    from art_ssl.estimators import encoder_classifier
    from art_ssl.models import MLPHead

    torch.manual_seed(args.seed)
    return encoder_classifier(
        copy.deepcopy(public.model),
        nb_classes,
        head=MLPHead(public.embedding_dim, nb_classes, dropout=0.2),
        freeze_encoder=False,
        input_shape=public.input_shape,
        device_type=args.device,
    )


class ResumableCSV:
    """Rows appended as they finish; a restarted run skips the keys already written."""

    def __init__(self, path: str | Path, key: tuple[str, ...]) -> None:
        self.path, self.key = Path(path), key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # keys as written: an empty key value stays "" (pandas would read it as NaN)
        done = (
            pd.read_csv(self.path, dtype=str, keep_default_na=False)
            if self.path.exists()
            else pd.DataFrame(columns=list(key))
        )
        self.done = {tuple(str(v) for v in row) for row in done[list(key)].itertuples(index=False)}

    def has(self, *values) -> bool:
        return tuple(str(v) for v in values) in self.done

    def append(self, rows: list[dict]) -> pd.DataFrame:
        """Append ``rows``; columns are matched by name (a row may lack some, or bring new ones: then the file is
        rewritten with the union of the columns)."""
        frame = pd.DataFrame(rows)
        if not self.path.exists():
            frame.to_csv(self.path, index=False)
        else:
            header = list(pd.read_csv(self.path, nrows=0).columns)
            new = [c for c in frame.columns if c not in header]
            if new:
                merged = pd.concat([pd.read_csv(self.path), frame], ignore_index=True)
                merged[header + new].to_csv(self.path, index=False)
            else:
                frame.reindex(columns=header).to_csv(self.path, mode="a", header=False, index=False)
        self.done |= {tuple(str(r[k]) for k in self.key) for r in rows}
        return frame
