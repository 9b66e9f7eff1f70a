"""
Speed benchmark (issue: attacks): time for each universal attack to reach a target fooling rate on the same
encoder and data, against ART's ``UniversalPerturbation`` (FGSM inner attack) on the same label-free surrogate head.

The yardstick for every attack is the surrogate head's fooling rate on the attacker's images ``x`` (the quantity
ART's UniversalPerturbation checks after every pass over ``x``). ART's UAP stops by itself once it reaches the target
(its check is part of its algorithm and of its time). Ours run a fixed number of steps, so each is measured in two
phases: (1) untimed, the fooling rate is checked every few steps to find the first step count that reaches the
target; (2) timed, a fresh attack with the same seed runs exactly that many steps with no checks, and the fooling
rate of its perturbation is verified on all of ``x`` (``reached``). Two times are reported: ``seconds`` is the whole
``generate`` call (optimisation plus the label-free fooling rate it computes on ``x``), ``optimisation_seconds`` the
optimisation loop alone. A random sign perturbation at the same eps is the floor any attack must beat.

    python evaluations/attack_speed.py --out evaluations/results/attack_speed.csv
"""

from __future__ import annotations

import argparse
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from art.attacks.evasion import UniversalPerturbation

from art_ssl.attacks.evasion import PAP, SSP, UAPEPGD, AdvEncoder
from art_ssl.data import load_task
from art_ssl.evaluation import apply_perturbation, surrogate_classifier
from art_ssl.zoo import load_encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="simclr_r18")
    parser.add_argument("--n", type=int, default=2000, help="attacker's unlabelled images")
    parser.add_argument("--eps", type=float, default=10, help="in 1/255 units")
    parser.add_argument("--targets", type=float, nargs="*", default=[0.5, 0.8], help="fooling rates to reach")
    parser.add_argument("--checks-per-epoch", type=int, default=8, help="phase-1 checks per pass over x")
    parser.add_argument("--art-max-iter", type=int, default=10)
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

    def fooling(delta: np.ndarray) -> float:
        x_adv = apply_perturbation(x, delta)
        return float(np.mean(surrogate.predict(x_adv, batch_size=128).argmax(1) != clean))

    rows: list[dict] = []
    sign_noise = eps * np.sign(np.random.default_rng(0).uniform(-1, 1, (1, *x.shape[1:]))).astype(np.float32)
    floor = fooling(sign_noise)
    for target in args.targets:
        rows.append(
            {"attack": "random sign noise (floor)", "target": target, "fooling_rate": floor, "reached": floor >= target}
        )
        random.seed(0)  # ART's UAP draws its sample order from Python's random
        start = time.perf_counter()
        art_uap = UniversalPerturbation(
            surrogate,
            attacker="fgsm",
            attacker_params={"eps": eps / 4},
            delta=1 - target,
            max_iter=args.art_max_iter,
            eps=eps,
            norm=np.inf,
            batch_size=512,
            verbose=False,
        )
        art_uap.generate(x)
        art_seconds = time.perf_counter() - start
        art_fr = fooling(art_uap.noise)
        rows.append(
            {
                "attack": "ART UniversalPerturbation (FGSM)",
                "target": target,
                "seconds": art_seconds,
                "optimisation_seconds": art_seconds,
                "fooling_rate": art_fr,
                "reached": art_fr >= target,
                "steps": None,
            }
        )
        print(rows[-1], flush=True)
        save(rows, args)

    common = {"eps": eps, "verbose": False, "seed": 0, "nb_epochs": args.max_epochs}
    factories: dict[str, Callable] = {
        "PAP (base)": lambda **kw: PAP(encoder, step_size=1e-3, **common, **kw),
        "PAP (ugs)": lambda **kw: PAP(encoder, variant="ugs", step_size=1e-3, **common, **kw),
        "SSP": lambda **kw: SSP(encoder, step_size=1e-3, **common, **kw),
        "AdvEncoder": lambda **kw: AdvEncoder(encoder, ngf=32, nz_batch=32, batch_size=128, **common, **kw),
        "UAPEPGD (surrogate head)": lambda **kw: UAPEPGD(
            surrogate, eps=eps, nb_epochs=args.max_epochs, verbose=False, **kw
        ),
    }
    for name, make in factories.items():
        # phase 1 (untimed): the first checked step count at which each target is reached
        probe = make()
        first = steps_to_targets(probe, x, fooling, args.targets, args.checks_per_epoch)
        for target in args.targets:
            if target not in first:  # never reached: report the whole run
                rows.append(
                    {
                        "attack": name,
                        "target": target,
                        "fooling_rate": fooling(probe.noise),
                        "reached": False,
                        "steps": probe.steps,
                        "optimisation_seconds": probe.seconds,
                    }
                )
                continue
            # phase 2 (timed): the same seeded attack, exactly that many steps, no checks
            attack = make(max_iter=first[target])
            start = time.perf_counter()
            attack.generate(x)
            seconds = time.perf_counter() - start
            fr = fooling(attack.noise)
            rows.append(
                {
                    "attack": name,
                    "target": target,
                    "seconds": seconds,
                    "optimisation_seconds": attack.seconds,
                    "fooling_rate": fr,
                    "reached": fr >= target,
                    "steps": attack.steps,
                    "images_per_s": attack.steps * attack.batch_size / attack.seconds,
                }
            )
            print(rows[-1], flush=True)
        save(rows, args)


def steps_to_targets(attack, x: np.ndarray, fooling: Callable, targets: list[float], checks_per_epoch: int):
    """Run ``attack`` with a fooling-rate check every few steps; the first checked step count reaching each target."""
    every = max(1, int(np.ceil(len(x) / attack.batch_size)) // checks_per_epoch)
    first: dict[float, int] = {}
    calls = 0

    def stop(delta: torch.Tensor) -> bool:
        nonlocal calls
        calls += 1
        rate = fooling(delta.cpu().numpy())
        for target in targets:
            if rate >= target and target not in first:
                first[target] = calls * every
        return len(first) == len(targets)

    attack.generate(x, stop=stop, check_every=every)
    return first


def save(rows: list[dict], args) -> None:
    """Write the table so far (a long run keeps what it measured)."""
    table = pd.DataFrame(rows)
    art = table[table["attack"].str.startswith("ART")].set_index("target")["seconds"]
    art_time = table["target"].map(art)
    table["speedup_vs_art"] = art_time / table["seconds"]
    table["optimisation_speedup_vs_art"] = art_time / table["optimisation_seconds"]
    table.loc[~table["reached"].astype(bool), ["speedup_vs_art", "optimisation_speedup_vs_art"]] = np.nan
    table = table.drop(columns=["steps"]).join(table["steps"]) if "steps" in table else table
    table["machine"] = f"CPU {torch.get_num_threads()} threads ({platform.machine()})"
    table["setting"] = f"{args.encoder}, {args.n} Fashion-MNIST images at 64x64, eps {args.eps:g}/255"
    table = table.sort_values(["target"], kind="stable")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    Path(args.out).with_suffix(".md").write_text(
        "Time to reach each target fooling rate on the surrogate head (method in the script's docstring; "
        "speed-ups only where the target was reached).\n\n" + table.to_markdown(index=False, floatfmt=".3g") + "\n"
    )


if __name__ == "__main__":
    main()
