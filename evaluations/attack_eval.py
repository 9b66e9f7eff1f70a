"""
Effect of the downstream-agnostic attacks on real downstream models (issue: attacks). For each zoo encoder:

1. The victim fine-tunes linear probes on Fashion-MNIST and on digits (labels the attacker never sees).
2. The attacker has the public encoder and unlabelled Fashion-MNIST training images (a seeded subset of
   ``--surrogate-n``), and learns one universal perturbation per attack and eps. Classifier-based attacks (UAPEPGD,
   ART's UniversalPerturbation) run on a label-free surrogate head (k-means pseudo-classes).
3. RA = the victims' accuracy on their test sets plus that perturbation (clipped to [0, 1], ART's convention).

    python evaluations/attack_eval.py                                   # every zoo encoder, eps 10/255
    python evaluations/attack_eval.py --encoders simclr_r18 --eps 4 8 16  # the eps curve
    python evaluations/attack_eval.py --size 28 --encoders PATH.safetensors --out ..._28.csv  # the 28x28 finding

Rows are appended as they finish (a restarted run skips finished rows).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from presets import ATTACKS, add_attack_arguments, attack_settings

from art_ssl.data import load_task, subsample
from art_ssl.estimators import encoder_classifier
from art_ssl.evaluation import ResultStore, apply_perturbation, linear_probe, universal_perturbations
from art_ssl.evaluation.sources import encoder_label, load_encoder_spec
from art_ssl.metrics import benign_accuracy, fooling_rate, robust_accuracy
from art_ssl.zoo import list_encoders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", nargs="*", default=None)
    parser.add_argument("--attacks", nargs="*", default=list(ATTACKS), choices=ATTACKS)
    parser.add_argument("--eps", nargs="*", type=float, default=[10.0], help="in 1/255 units")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--n-train", type=int, default=0, help="victims' probe training images per task (0: all)")
    parser.add_argument("--out", default="evaluations/results/attacks_64.csv")
    add_attack_arguments(parser)
    args = parser.parse_args()

    out = ResultStore(args.out, ("encoder", "attack", "eps_255"))
    fmnist = load_task("fashion_mnist", size=args.size)
    digits = load_task("digits", size=args.size)
    probe_sets = {
        t.name: subsample(t.x_train, t.y_train, args.n_train or None, seed=args.seed) for t in (fmnist, digits)
    }
    x_sur, _ = subsample(fmnist.x_train, fmnist.y_train, args.surrogate_n, seed=args.seed + 1)

    for enc_name in args.encoders or list_encoders(backdoored=False):
        enc_label, method = encoder_label(enc_name)
        encoder = load_encoder_spec(enc_name, args.size, args.device)
        if all(out.has(encoder=enc_label, attack=a, eps_255=e) for a in args.attacks for e in args.eps):
            continue
        victims = {}
        for task in (fmnist, digits):
            probe = linear_probe(encoder, *probe_sets[task.name], task.x_test, task.y_test)
            clf = encoder_classifier(encoder, task.nb_classes, head=probe.head, device_type=args.device)
            victims[task.name] = (clf, task, clf.predict(task.x_test, batch_size=512).argmax(1))
        for eps_255 in args.eps:
            for attack_name in args.attacks:
                if out.has(encoder=enc_label, attack=attack_name, eps_255=eps_255):
                    continue
                (learnt,) = universal_perturbations(
                    encoder, [attack_name], [eps_255], x_sur, attack_settings(args), seed=args.seed
                ).values()
                noise, seconds = learnt["noise"], learnt["attack_seconds"]
                rows = []
                for task_name, (clf, task, clean_pred) in victims.items():
                    x_adv = apply_perturbation(task.x_test, noise)
                    adv_pred = clf.predict(x_adv, batch_size=512).argmax(1)
                    rows.append(
                        {
                            "encoder": enc_label,
                            "method": method,
                            "size": args.size,
                            "task": task_name,
                            "attack": attack_name,
                            "eps": eps_255 / 255,
                            "eps_255": float(eps_255),
                            "BA": benign_accuracy(clean_pred, task.y_test),
                            "RA": robust_accuracy(adv_pred, task.y_test),
                            "fooling_rate": fooling_rate(clean_pred, adv_pred),
                            "attack_seconds": round(seconds, 1),
                            "linf": float(np.abs(noise).max()),
                            "surrogate_n": args.surrogate_n,
                            "seed": args.seed,
                        }
                    )
                out.append(rows)
                print(
                    pd.DataFrame(rows)[
                        ["encoder", "task", "attack", "eps_255", "BA", "RA", "attack_seconds"]
                    ].to_string(index=False, header=False),
                    flush=True,
                )


if __name__ == "__main__":
    main()
