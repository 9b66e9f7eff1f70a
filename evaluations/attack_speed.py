"""
Speed benchmark (issue: attacks): time for each universal attack to reach a target fooling rate on the same
encoder and data, against ART's ``UniversalPerturbation`` (FGSM inner attack) on the same label-free surrogate head.

The yardstick for every attack is the surrogate head's fooling rate on the attacker's images ``x`` (the quantity
ART's UniversalPerturbation checks after every pass over ``x``). Our attacks check it ``--checks-per-epoch`` times a
pass and stop on reaching the target; the time includes those checks.

    python evaluations/attack_speed.py --out evaluations/results/attack_speed.csv
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from art.attacks.evasion import UniversalPerturbation

from art_ssl.attacks.evasion import PAP, SSP, UAPEPGD, AdvEncoder
from art_ssl.data import load_task
from art_ssl.evaluation import surrogate_classifier
from art_ssl.zoo import load_encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="simclr_r18")
    parser.add_argument("--n", type=int, default=2000, help="attacker's unlabelled images")
    parser.add_argument("--eps", type=float, default=10, help="in 1/255 units")
    parser.add_argument("--target", type=float, default=0.5, help="fooling rate to reach")
    parser.add_argument("--checks-per-epoch", type=int, default=4)
    parser.add_argument("--art-max-iter", type=int, default=20)
    parser.add_argument("--max-epochs", type=int, default=10, help="passes over the images for our attacks")
    parser.add_argument("--out", default="evaluations/results/attack_speed.csv")
    args = parser.parse_args()

    torch.manual_seed(0)
    np.random.seed(0)
    task = load_task("fashion_mnist", size=64, n_train=args.n)
    x = task.x_train
    encoder = load_encoder(args.encoder, "cpu")
    surrogate = surrogate_classifier(encoder, x)
    clean = surrogate.predict(x, batch_size=512).argmax(1)
    eps = args.eps / 255

    def fooling(delta: torch.Tensor) -> float:
        x_adv = np.clip(x + delta.cpu().numpy(), 0, 1).astype(np.float32)
        return float(np.mean(surrogate.predict(x_adv, batch_size=512).argmax(1) != clean))

    rows = []
    start = time.perf_counter()
    art_uap = UniversalPerturbation(surrogate, attacker="fgsm", attacker_params={"eps": eps / 4},
                                    delta=1 - args.target, max_iter=args.art_max_iter, eps=eps, norm=np.inf,
                                    batch_size=512, verbose=False)  # fmt: skip
    art_uap.generate(x)
    art_seconds = time.perf_counter() - start
    art_fr = fooling(torch.from_numpy(art_uap.noise))
    rows.append({"attack": "ART UniversalPerturbation (FGSM)", "seconds": art_seconds, "fooling_rate": art_fr,
                 "reached": art_fr >= args.target, "images_per_s": np.nan})  # fmt: skip
    print(rows[-1], flush=True)

    common = {"eps": eps, "verbose": False, "seed": 0, "nb_epochs": args.max_epochs}
    ours = {
        "PAP (base)": PAP(encoder, step_size=1e-3, **common),
        "PAP (ugs)": PAP(encoder, variant="ugs", step_size=1e-3, **common),
        "SSP": SSP(encoder, step_size=1e-3, **common),
        "AdvEncoder": AdvEncoder(encoder, ngf=32, nz_batch=32, batch_size=128, **common),
    }
    ours["UAPEPGD (surrogate head)"] = UAPEPGD(surrogate, eps=eps, nb_epochs=args.max_epochs, verbose=False)
    for name, attack in ours.items():
        every = max(1, args.n // attack.batch_size // args.checks_per_epoch)
        start = time.perf_counter()
        attack.generate(x, stop=lambda d: fooling(d) >= args.target, check_every=every)
        seconds = time.perf_counter() - start
        fr = fooling(torch.from_numpy(attack.noise))
        rows.append({"attack": name, "seconds": seconds, "fooling_rate": fr, "reached": fr >= args.target,
                     "images_per_s": attack.steps * attack.batch_size / seconds})  # fmt: skip
        print(rows[-1], flush=True)
        save(rows, art_seconds, args)


def save(rows: list[dict], art_seconds: float, args) -> None:
    """Write the table so far (a long run keeps what it measured)."""
    table = pd.DataFrame(rows)
    table["speedup_vs_art"] = art_seconds / table["seconds"]
    table["machine"] = f"CPU {torch.get_num_threads()} threads ({platform.machine()})"
    table["setting"] = (f"{args.encoder}, {args.n} Fashion-MNIST images at 64x64, eps {args.eps:g}/255, "
                        f"target fooling rate {args.target}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    Path(args.out).with_suffix(".md").write_text(
        "Time to reach the target fooling rate on the surrogate head (see the script's docstring).\n\n"
        + table.to_markdown(index=False, floatfmt=".3g") + "\n"
    )


if __name__ == "__main__":
    main()
