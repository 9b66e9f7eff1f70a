"""
Effect of the downstream-agnostic attacks on real downstream models (issue: attacks). For each zoo encoder:

1. The victim fine-tunes linear probes on Fashion-MNIST and on digits (labels the attacker never sees).
2. The attacker has the public encoder and unlabelled Fashion-MNIST training images (a seeded subset of
   ``--surrogate-n``), and learns one universal perturbation per attack and eps. Classifier-based attacks (UAPEPGD,
   ART's UniversalPerturbation) run on a label-free surrogate head (k-means pseudo-classes).
3. RA = the victims' accuracy on their test sets plus that perturbation (clipped to [0, 1], ART's convention).

    python evaluations/attack_eval.py --out evaluations/results/attacks_64.csv
    python evaluations/attack_eval.py --size 28 --encoders simclr_28 ... (the 28x28 finding)

Rows are appended as they finish (a restarted run skips finished rows).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from art.attacks.evasion import UniversalPerturbation

from art_ssl.attacks.evasion import PAP, SSP, UAPEPGD, AdvEncoder
from art_ssl.data import load_task, subsample
from art_ssl.estimators import PyTorchEncoder, encoder_classifier
from art_ssl.evaluation import linear_probe, surrogate_classifier
from art_ssl.metrics import benign_accuracy, fooling_rate, robust_accuracy
from art_ssl.zoo import ZOO_ARCH, build_from_info, encoder_info, list_encoders, load_encoder, load_state_dict

ATTACKS = ("advencoder", "pap_base", "pap_ugs", "pap_fuse", "ssp", "uapepgd", "art_uap")


def make_attack(name: str, encoder: PyTorchEncoder, surrogate, eps: float, args):
    common = {"eps": eps, "seed": args.seed, "verbose": False}
    if name == "advencoder":
        return AdvEncoder(encoder, ngf=args.gen_ngf, nz_batch=args.gen_nz_batch, nb_epochs=args.gen_epochs, **common)
    if name.startswith("pap_"):
        return PAP(encoder, variant=name[4:], step_size=args.sign_step, **common)
    if name == "ssp":
        return SSP(encoder, step_size=args.sign_step, **common)
    if name == "uapepgd":
        return UAPEPGD(surrogate, **common)
    if name == "art_uap":
        return UniversalPerturbation(surrogate, attacker="fgsm", attacker_params={"eps": eps / 4},
                                     delta=0.2, max_iter=args.uap_iter, eps=eps, norm=np.inf, batch_size=256,
                                     verbose=False)  # fmt: skip
    raise ValueError(name)


def load_any_encoder(name: str, size: int) -> tuple[str, str, PyTorchEncoder]:
    """A zoo encoder by name, or a safetensors file of the zoo's architecture (e.g. the 28x28 encoder)."""
    if name in list_encoders():
        return name, encoder_info(name)["method"], load_encoder(name, "cpu")
    model = build_from_info({"arch": ZOO_ARCH[0], "arch_kwargs": ZOO_ARCH[1]}, load_state_dict(name))
    return Path(name).stem, "", PyTorchEncoder(model, (1, size, size), device_type="cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", nargs="*", default=None)
    parser.add_argument("--attacks", nargs="*", default=list(ATTACKS), choices=ATTACKS)
    parser.add_argument("--eps", nargs="*", type=float, default=[4, 8, 10, 16], help="in 1/255 units")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--surrogate-n", type=int, default=5000)
    parser.add_argument("--sign-step", type=float, default=2e-4)
    parser.add_argument("--gen-ngf", type=int, default=32)
    parser.add_argument("--gen-nz-batch", type=int, default=32)
    parser.add_argument("--gen-epochs", type=int, default=10)
    parser.add_argument("--uap-iter", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="evaluations/results/attacks_64.csv")
    args = parser.parse_args()

    out = Path(args.out)
    done = pd.read_csv(out) if out.exists() else pd.DataFrame(columns=["encoder", "attack", "eps"])
    finished = {(r.encoder, r.attack, round(float(r.eps) * 255)) for r in done.itertuples()}
    fmnist = load_task("fashion_mnist", size=args.size)
    digits = load_task("digits", size=args.size)
    x_sur, _ = subsample(fmnist.x_train, fmnist.y_train, args.surrogate_n, seed=args.seed + 1)

    for enc_name in args.encoders or list_encoders():
        enc_label, method, encoder = load_any_encoder(enc_name, args.size)
        victims = {}
        for task in (fmnist, digits):
            probe = linear_probe(encoder, task.x_train, task.y_train, task.x_test, task.y_test)
            clf = encoder_classifier(encoder, task.nb_classes, head=probe.head, device_type="cpu")
            victims[task.name] = (clf, task, clf.predict(task.x_test, batch_size=512).argmax(1))
        surrogate = surrogate_classifier(encoder, x_sur, seed=args.seed)
        for eps_255 in args.eps:
            eps = eps_255 / 255
            for attack_name in args.attacks:
                if (enc_label, attack_name, round(eps_255)) in finished:
                    continue
                torch.manual_seed(args.seed)
                np.random.seed(args.seed)  # ART's UniversalPerturbation shuffles with numpy
                attack = make_attack(attack_name, encoder, surrogate, eps, args)
                start = time.perf_counter()
                attack.generate(x_sur)
                seconds = time.perf_counter() - start
                noise = attack.noise
                rows = []
                for task_name, (clf, task, clean_pred) in victims.items():
                    x_adv = np.clip(task.x_test + noise, 0, 1).astype(np.float32)
                    adv_pred = clf.predict(x_adv, batch_size=512).argmax(1)
                    rows.append({
                        "encoder": enc_label, "method": method, "size": args.size, "task": task_name,
                        "attack": attack_name, "eps": eps, "eps_255": eps_255,
                        "BA": benign_accuracy(clean_pred, task.y_test), "RA": robust_accuracy(adv_pred, task.y_test),
                        "fooling_rate": fooling_rate(clean_pred, adv_pred), "attack_seconds": round(seconds, 1),
                        "linf": float(np.abs(noise).max()), "surrogate_n": args.surrogate_n, "seed": args.seed,
                    })  # fmt: skip
                frame = pd.DataFrame(rows)
                frame.to_csv(out, mode="a", header=not out.exists(), index=False)
                print(frame[["encoder", "task", "attack", "eps_255", "BA", "RA", "attack_seconds"]].to_string(
                    index=False, header=False), flush=True)


if __name__ == "__main__":
    main()
