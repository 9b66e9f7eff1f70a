"""
One command that regenerates every table in ``evaluations/results/`` and in the top-level README.

    python evaluations/reproduce.py                   # "full" when a GPU is present, else "quick"
    python evaluations/reproduce.py --profile quick   # reduced protocol, under an hour on 2 CPU cores
    python evaluations/reproduce.py --profile bench   # the committed tables' own commands (hours on 2 CPU cores)
    python evaluations/reproduce.py --profile full    # the papers' budgets where our scripts expose them (GPU)
    python evaluations/reproduce.py --dry-run         # print the commands and stop

Profiles (every setting below is a command-line option of the step's script, printed with ``--dry-run``; the
tables of attacks and adversarial fine-tuning are audit grids, ``run_preset.py`` with the profile's budgets in
``presets.PROFILES``):

- ``bench`` runs exactly the commands listed in ``evaluations/README.md`` and writes into ``evaluations/results``,
  so the committed tables are rebuilt in place, and rewrites the README's tables (``readme_tables.py``).
- ``quick`` keeps every table and its rows and shrinks the data and budgets (the attacker's images, downstream
  images, epochs, AutoAttack images); it writes into ``evaluations/results/quick`` and leaves the README alone
  (``readme_tables.md`` there holds its versions of the README's tables). Its numbers are a smoke-reproduction:
  same pipeline, smaller runs, so they differ from the committed ones.
- ``full`` uses the papers' budgets (AdvEncoder's generator 128 wide, 256 noise vectors, 20 epochs; 50 epochs of
  adversarial fine-tuning with PGD-10 on the whole training sets; ZePAD 20 + 20 epochs; AutoAttack on 1,000 images)
  on the GPU and writes into ``evaluations/results/full``.

The encoders come from the shipped zoo; ``--zoo`` first re-trains them (``pretrain_zoo.py``, ``backdoor_zoo.py``,
which overwrite ``art_ssl/zoo``: bench and full only). Every step's command, time and exit status go to
``reproduce_log.csv`` in the output folder (summed up in ``reproduce_log.md``); a step already logged as finished
with the same command is skipped, so an interrupted run continues where it stopped. A new run (no log in the
folder, or ``--force``) first removes what an earlier one left there: the results that scripts resume from and,
outside bench, the folder's DAE cache and checkpoints (bench reuses ``evaluations/cache`` and
``evaluations/checkpoints``, which are not committed). Needs the full Fashion-MNIST:
``apt-get install dataset-fashion-mnist``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("quick", "bench", "full")
# skip the rows already in their --out (so does the audit, in its --out folder)
RESUMABLE = ("run_preset.py", "backdoor_eval.py")
ZOO = {
    "simclr_r18": ("simclr", 0),
    "simclr_r18_s1": ("simclr", 1),
    "barlow_twins_r18": ("barlow_twins", 0),
    "moco_r18": ("moco", 0),
}

# Per profile, the options of each step that differ from the script's defaults. bench: the committed commands.
SETTINGS: dict[str, dict[str, list[str]]] = {
    "bench": {
        "attacks_28_pretrain": ["--epochs", "10"],
        "attack_speed": [],
        "defence_speed": ["--epochs", "2", "--pgd-steps", "10"],
        "zepad": ["--aft-epochs", "10", "--n-train", "4000", "--adaptive-n", "200", "--aa-n", "20"],
        "backdoor": [],
        "backdoor_probe": [],
        "audit": [],
    },
    "quick": {
        "attacks_28_pretrain": ["--epochs", "2"],
        "attack_speed": ["--n", "1000", "--max-epochs", "5", "--art-max-iter", "5"],
        "defence_speed": ["--epochs", "1", "--n", "512", "--pgd-steps", "10"],
        "zepad": [
            "--aft-epochs",
            "2",
            "--n-train",
            "1000",
            "--n-test",
            "1000",
            "--surrogate-n",
            "1000",
            "--task-epochs",
            "digits=2",
            "--head-epochs",
            "5",
            "--adaptive-n",
            "50",
            "--aa-n",
            "5",
        ],
        "backdoor": [
            "--n-train",
            "2000",
            "--n-test",
            "1000",
            "--epochs",
            "3",
            "--task-epochs",
            "digits=5",
            "--distill-fraction",
            "0.02",
            "--distill-epochs",
            "4",
            "--teacher-epochs",
            "2",
            "--warmup-epochs",
            "4",
            "--sequela-max-epochs",
            "3",
            "--sensitivity-samples",
            "200",
            "--sensitivity-epochs",
            "1",
        ],
        "backdoor_probe": ["--n-train", "1000", "--n-test", "1000"],
        "audit": ["--epochs", "1", "--n-train", "1000", "--n-test", "500"],
    },
    "full": {
        "attacks_28_pretrain": ["--epochs", "10"],
        "attack_speed": [],
        "defence_speed": ["--epochs", "2", "--pgd-steps", "10", "--n", "8192"],
        "zepad": [
            "--aft-epochs",
            "20",
            "--head-epochs",
            "20",
            "--n-train",
            "0",
            "--n-test",
            "0",
            "--pgd-steps",
            "10",
            "--task-epochs",
            "digits=20",
            "--adaptive-n",
            "1000",
            "--aa-n",
            "1000",
            "--gen-ngf",
            "128",
            "--gen-nz-batch",
            "256",
            "--gen-epochs",
            "20",
        ],
        "backdoor": [
            "--n-train",
            "0",
            "--n-test",
            "0",
            "--epochs",
            "20",
            "--task-epochs",
            "digits=20",
            "--distill-epochs",
            "500",
            "--pgd-steps",
            "10",
        ],
        "backdoor_probe": ["--n-train", "0", "--n-test", "0"],
        "audit": ["--data", "fashion-mnist", "--epochs", "10", "--n-train", "0", "--n-test", "0"],
    },
}


# --tiny: options appended to each script step (the last occurrence of an option wins), so that every step of a
# profile runs in minutes on a CPU; the grid presets shrink through ``run_preset.py --tiny`` (presets.TINY). Numbers
# from a tiny run are meaningless: it proves the code path (e.g. the GPU profile's on a machine without one).
TINY_ARGS: dict[str, list[str]] = {
    "zoo_probe": ["--encoders", "simclr_r18", "--no-baseline"],
    "attacks_28_pretrain": ["--epochs", "1", "--n-train", "256", "--batch-size", "64"],
    "attack_speed": ["--n", "64", "--max-epochs", "1", "--art-max-iter", "1"],
    "defence_speed": ["--n", "64", "--epochs", "1"],
    "zepad": [
        *("--tasks", "digits", "--n-train", "64", "--n-test", "64", "--aft-epochs", "1", "--head-epochs", "1"),
        *("--pgd-steps", "1", "--genaf-stage2-epochs", "1", "--sensitivity-samples", "16", "--sensitivity-epochs", "1"),
        *("--adaptive-n", "8", "--adaptive-steps", "2", "--aa-n", "2", "--task-epochs", "digits=1"),
        *("--surrogate-n", "64", "--gen-epochs", "1", "--gen-ngf", "8", "--gen-nz-batch", "4"),
    ],
    "zepad_cost": ["--repeats", "1"],
    "backdoor": [
        *("--n-train", "64", "--n-test", "64", "--head-epochs", "1", "--epochs", "1", "--pgd-steps", "1"),
        *("--sensitivity-samples", "16", "--sensitivity-epochs", "1", "--genaf-stage2-epochs", "1"),
        *("--distill-fraction", "0.002", "--distill-epochs", "1", "--teacher-epochs", "1", "--warmup-epochs", "1"),
        *("--sequela-max-epochs", "1", "--task-epochs", "digits=1"),
    ],
    "backdoor_probe": ["--n-train", "64", "--n-test", "64"],
    "audit": [
        *("--epochs", "1", "--n-train", "64", "--n-test", "64", "--surrogate-n", "64", "--whitebox-n", "8"),
        *("--gen-epochs", "1", "--sign-epochs", "1", "--size", "32"),
    ],
}
TINY_ARGS["zepad_barlow"] = TINY_ARGS["zepad"]  # the same script with the other victim


@dataclass
class Step:
    name: str
    argv: list[str]  # after the Python interpreter
    keep: tuple[Path, Path] | None = None  # (file the step writes, copy of it among the results) once it succeeds

    @property
    def fresh(self) -> list[Path]:
        """Results this step's script appends to and resumes from (removed when a new run starts)."""
        script = self.argv[0].rsplit("/", 1)[-1]
        if script == "run_preset.py":
            return [Path(self.argv[self.argv.index("--out-dir") + 1]) / f"{self.name}.csv"]
        resumable = script in RESUMABLE or self.argv[:3] == ["-m", "art_ssl", "audit"]
        return [Path(self.argv[self.argv.index("--out") + 1])] if resumable else []

    @property
    def command(self) -> str:
        return shlex.join(["python", *self.argv])


def plan(profile: str, out: Path, zoo: bool = False, tiny: bool = False) -> list[Step]:
    """The steps of ``profile`` writing into ``out``, in order (each table after the runs it reads); ``tiny``
    shrinks the preset steps (``run_preset.py --tiny``) to prove their code path."""
    if profile not in SETTINGS:
        raise ValueError(f"`profile` must be one of {PROFILES}, got {profile!r}.")
    s = SETTINGS[profile]
    device = ["--device", "gpu" if profile == "full" else "cpu"]
    bench = profile == "bench"
    ev = "evaluations/"
    cache = ["--cache", "evaluations/cache" if bench else str(out / "cache")]
    ckpt = Path("evaluations/checkpoints") if bench else out / "checkpoints"
    enc28 = str(ckpt / "simclr_r18_28px.safetensors")
    presets = [ev + "run_preset.py", "--profile", profile, *(["--tiny"] if tiny else [])]

    def preset(name: str, *extra: str) -> Step:
        """A benchmark table as an audit grid (presets.GRID_PRESETS), written to <out>/<name>.csv."""
        return Step(name, [*presets, name, *extra, *device, "--cache", cache[1], "--out-dir", str(out)])

    steps = []
    if zoo:
        if tiny:
            raise ValueError("`--zoo` with `--tiny` would overwrite the shipped zoo with tiny encoders: leave one out.")
        if profile == "quick":
            raise ValueError(
                "`--zoo` re-trains the shipped encoders in art_ssl/zoo: use it with --profile bench or full, not quick."
            )
        for name, (method, seed) in ZOO.items():
            steps.append(
                Step(
                    f"zoo_{name}",
                    [
                        ev + "pretrain_zoo.py",
                        "--name",
                        name,
                        "--method",
                        method,
                        "--seed",
                        str(seed),
                        "--epochs",
                        "10",
                        *device,
                    ],
                )
            )
        steps.append(Step("zoo_badencoder", [ev + "backdoor_zoo.py", *device]))
    steps += [
        Step("zoo_probe", [ev + "probe_zoo.py", "--results-dir", str(out), *([] if bench else ["--no-zoo-update"])]),
        preset("attacks_64"),
        preset("attacks_64_curve"),
        Step(
            "attacks_28_pretrain",
            [
                "-m",
                "art_ssl",
                "pretrain",
                "--method",
                "simclr",
                "--data",
                "fashion_mnist",
                "--size",
                "28",
                *s["attacks_28_pretrain"],
                "--seed",
                "0",
                *device,
                "--out",
                enc28,
            ],
        ),
        preset("attacks_28", "--encoders", enc28),
        Step("attack_speed", [ev + "attack_speed.py", *s["attack_speed"], "--out", str(out / "attack_speed.csv")]),
        Step("attack_tables", [ev + "attack_tables.py", "--results-dir", str(out)]),
        preset("defences_64"),
        preset("defences_curve_64"),
        preset("defences_sources_64"),
        preset("defences_digits_3epochs_64"),
        preset("defences_10epochs_64"),
        preset("defences_digits_30epochs_64"),
        preset("defences_30epochs_64"),
        preset("defences_digits_30epochs_anneal_64"),
        Step(
            "defence_speed",
            [ev + "defence_speed.py", *s["defence_speed"], *device, "--out", str(out / "defence_speed.csv")],
        ),
        Step("defence_tables", [ev + "defence_tables.py", "--results-dir", str(out)]),
        Step("zepad", [ev + "zepad_eval.py", "--skip-genaf", *s["zepad"], *cache, *device, "--out-dir", str(out)]),
        Step(
            "zepad_barlow",  # the other victim (issue 16's goal names both): the main and detection tables only
            [
                *(ev + "zepad_eval.py", "--skip-genaf", *s["zepad"], "--victim", "barlow_twins_r18"),
                *("--auxiliary", "simclr_r18", "--skip-transfer", "--adaptive-n", "0", *cache, *device),
                *("--out-dir", str(out)),
            ],
        ),
        Step("zepad_cost", [ev + "zepad_cost.py", *device, "--out", str(out / "zepad_cost.csv")]),
        Step(
            "backdoor",
            [
                ev + "backdoor_eval.py",
                *s["backdoor"],
                *device,
                "--checkpoints",
                str(ckpt),
                "--out",
                str(out / "backdoor_64.csv"),
            ],
        ),
        Step("backdoor_tables", [ev + "backdoor_tables.py", "--results-dir", str(out)]),
        Step(
            "backdoor_probe",
            [ev + "backdoor_probe.py", *s["backdoor_probe"], "--checkpoints", str(ckpt), "--results-dir", str(out)],
        ),
        Step(
            "audit",
            ["-m", "art_ssl", "audit", *s["audit"], *device, "--out", str(out / "audit")],
            keep=(out / "audit" / "results.csv", out / "audit_default.csv"),
        ),
        Step(
            "readme_tables",
            [ev + "readme_tables.py", "--results-dir", str(out), *(["--update-readme"] if bench else [])],
        ),
    ]
    if tiny:
        for step in steps:
            step.argv += TINY_ARGS.get(step.name, [])
    return steps


def finished(log: Path) -> set[str]:
    """Commands logged as finished (exit status 0) in an earlier run into the same folder."""
    if not log.exists():
        return set()
    frame = pd.read_csv(log, dtype={"command": str})
    return set(frame.loc[frame.returncode == 0, "command"])


def log_row(log: Path, row: dict) -> None:
    frame = pd.DataFrame([row])
    frame.to_csv(log, mode="a", header=not log.exists(), index=False)


def stamp(out: Path, profile: str) -> None:
    """Mark every markdown table of a reduced or enlarged run: its captions describe the bench settings."""
    note = (
        f"> Profile `{profile}` of `evaluations/reproduce.py`: the caption below describes the committed "
        "(bench) settings; this table's own commands are in `reproduce_log.md` of this folder.\n\n"
    )
    for path in out.glob("*.md"):
        text = path.read_text()
        if path.name != "reproduce_log.md" and not text.startswith("> Profile"):
            path.write_text(note + text)


def summarise(log: Path, profile: str) -> str:
    frame = pd.read_csv(log)
    last = frame.drop_duplicates("step", keep="last")
    table = last[["step", "seconds", "returncode", "command"]].copy()
    table["minutes"] = (table.pop("seconds") / 60).round(1)
    total = table["minutes"].sum()
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    text = (
        f"`python evaluations/reproduce.py --profile {profile}`: {len(table)} steps, {total:.1f} minutes in all "
        f"(sum of each step's last run) on {os.cpu_count()} CPU cores ({platform.machine()}), {gpu}.\n\n"
        + table[["step", "minutes", "returncode", "command"]].to_markdown(index=False)
        + "\n"
    )
    log.with_suffix(".md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--profile", choices=PROFILES, default=None, help="default: full when CUDA is available, else quick"
    )
    parser.add_argument("--out", default=None, help="output folder (default: evaluations/results[/quick|/full])")
    parser.add_argument("--only", nargs="*", default=None, metavar="STEP", help="run these steps only")
    parser.add_argument("--skip", nargs="*", default=[], metavar="STEP", help="leave these steps out")
    parser.add_argument("--zoo", action="store_true", help="re-train the zoo encoders first (bench, full)")
    parser.add_argument("--force", action="store_true", help="run steps already logged as finished")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and stop")
    parser.add_argument(
        "--tiny", action="store_true", help="shrink the grid presets (presets.TINY): prove a profile's path on a CPU"
    )
    args = parser.parse_args(argv)
    if args.profile is None:
        import torch

        args.profile = "full" if torch.cuda.is_available() else "quick"
    sub = {"bench": "", "quick": "quick", "full": "full"}[args.profile]
    out = Path(args.out).resolve() if args.out else ROOT / "evaluations" / "results" / sub
    if out.is_relative_to(ROOT):  # the steps run in the repository root: commands stay portable
        out = out.relative_to(ROOT)
    steps = plan(args.profile, out, zoo=args.zoo, tiny=args.tiny)
    names = [step.name for step in steps]
    for name in [*(args.only or []), *args.skip]:
        if name not in names:
            raise SystemExit(f"reproduce: unknown step {name!r}; the steps of {args.profile}: {', '.join(names)}")
    steps = [st for st in steps if (args.only is None or st.name in args.only) and st.name not in args.skip]
    if args.dry_run:
        print("\n".join(f"# {st.name}\n{st.command}" for st in steps))
        return 0

    (ROOT / out).mkdir(parents=True, exist_ok=True)
    log = ROOT / out / "reproduce_log.csv"
    if args.force or not log.exists():  # a new run: nothing is kept from an earlier one
        log.unlink(missing_ok=True)
        stale = [path for step in steps for path in step.fresh]
        if args.profile != "bench" and args.only is None and not args.skip:  # its own DAE cache and checkpoints
            stale += [out / "cache", out / "checkpoints"]
        for path in (ROOT / path for path in stale):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    done = finished(log)
    start_all = time.perf_counter()
    for i, step in enumerate(steps, 1):
        if step.command in done:
            print(f"[{i}/{len(steps)}] {step.name}: finished in an earlier run, skipped", flush=True)
            continue
        print(f"[{i}/{len(steps)}] {step.name}: {step.command}", flush=True)
        start = time.perf_counter()
        returncode = subprocess.run([sys.executable, *step.argv], cwd=ROOT).returncode
        seconds = time.perf_counter() - start
        log_row(
            log,
            {
                "profile": args.profile,
                "step": step.name,
                "seconds": round(seconds, 1),
                "returncode": returncode,
                "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": step.command,
            },
        )
        print(f"[{i}/{len(steps)}] {step.name}: exit {returncode} after {seconds / 60:.1f} min", flush=True)
        if returncode == 0 and step.keep:
            shutil.copyfile(*(ROOT / path for path in step.keep))
        if returncode != 0:
            print(
                f"reproduce: step {step.name} failed; fix it and run the same command again to continue",
                file=sys.stderr,
            )
            return returncode
    if args.profile != "bench":
        stamp(ROOT / out, args.profile)
    print(summarise(log, args.profile))
    print(f"reproduce: done in {(time.perf_counter() - start_all) / 60:.1f} min; tables in {ROOT / out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
