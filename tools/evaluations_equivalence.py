"""
Same numbers before and after a refactor of ``evaluations/``: runs each benchmark script of two checkouts (``--old``,
``--new``) on the same tiny settings and compares their CSVs column by column (timing columns excepted).

Fashion-MNIST is replaced by the shipped subset (``fashion_mnist_subset``, 5,000 / 1,000 images, under the name
``fashion_mnist``) so that a run takes minutes on a CPU; the scripts are otherwise run unchanged, by their command
lines. Used for issue 17 (evaluations/ over art_ssl.evaluation; attack_eval.py and defence_eval.py have since become
grid presets, ``run_preset.py``, and left this comparison):

    git archive <old commit> | tar -x -C /tmp/old && python tools/evaluations_equivalence.py --old /tmp/old --new .
    git archive f6037b3 | tar -x -C /tmp/old && python tools/evaluations_equivalence.py --old /tmp/old \
        --preset-vs-script

Prints one line per script (``same`` or the differing columns) and exits 1 when any differs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

# Runs one script with Fashion-MNIST swapped for its shipped subset (same name, so the scripts see no difference).
RUNNER = """
import runpy, sys
import art_ssl.data as data
from art_ssl.data.tasks import Task
load = data.load_task
def small(name, **kw):
    if name != "fashion_mnist":
        return load(name, **kw)
    t = load("fashion_mnist_subset", **kw)
    return Task("fashion_mnist", t.x_train, t.y_train, t.x_test, t.y_test)
data.load_task = small
script = sys.argv[1]
sys.path.insert(0, "evaluations")
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"""

TIMING = ("seconds", "train_seconds", "attack_seconds", "autoattack_seconds")


def commands(out: Path) -> dict[str, tuple[list[str], list[str]]]:
    """script -> (arguments, CSV files it writes under ``out``)."""
    tiny = ["--surrogate-n", "200", "--gen-epochs", "1", "--gen-ngf", "8", "--gen-nz-batch", "4"]
    return {
        "zepad_eval": (
            [
                "evaluations/zepad_eval.py",
                "--tasks",
                "digits",
                "--attacks",
                "pap_ugs",
                "--n-train",
                "200",
                "--n-test",
                "100",
                "--aft-epochs",
                "1",
                "--head-epochs",
                "1",
                "--pgd-steps",
                "1",
                "--genaf-stage2-epochs",
                "1",
                "--sensitivity-samples",
                "50",
                "--sensitivity-epochs",
                "1",
                "--adaptive-n",
                "20",
                "--adaptive-eps",
                "8",
                "--adaptive-steps",
                "2",
                "--aa-n",
                "0",
                "--task-epochs",
                "digits=1",
                "--cache",
                str(out / "cache"),
                "--out-dir",
                str(out),
                *tiny,
            ],
            ["zepad_64.csv", "zepad_detection_64.csv", "zepad_transfer_64.csv", "zepad_adaptive_64.csv"],
        ),
        "backdoor_eval": (
            [
                "evaluations/backdoor_eval.py",
                "--tasks",
                "fashion_mnist",
                "--defences",
                "none",
                "finetune",
                "super_finetune",
                "genaf",
                "--n-train",
                "200",
                "--n-test",
                "200",
                "--head-epochs",
                "1",
                "--epochs",
                "1",
                "--pgd-steps",
                "1",
                "--sensitivity-samples",
                "50",
                "--sensitivity-epochs",
                "1",
                "--sequela-max-epochs",
                "1",
                "--out",
                str(out / "backdoor.csv"),
            ],
            ["backdoor.csv"],
        ),
    }


def run(tree: Path, out: Path, script: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    args, _ = commands(out)[script]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with open(out / f"{script}.log", "w") as log:
        subprocess.run([sys.executable, "-c", RUNNER, *args], cwd=tree, env=env, stdout=log, stderr=log, check=True)


def compare(old: Path, new: Path) -> list[str]:
    """The columns that differ between two CSVs (numbers compared exactly, NaN equal to NaN)."""
    a, b = pd.read_csv(old), pd.read_csv(new)
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return [f"layout: {list(a.columns)} x{len(a)} vs {list(b.columns)} x{len(b)}"]
    diff = []
    for column in a.columns:
        if column in TIMING:
            continue
        x, y = a[column], b[column]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            same = np.array_equal(x.to_numpy(float), y.to_numpy(float), equal_nan=True)
        else:
            same = x.fillna("").astype(str).equals(y.fillna("").astype(str))
        if not same:
            diff.append(column)
    return diff


# The defences_64 preset against the script it replaced (defence_eval.py of an older checkout, ``--old``), tiny
# settings: the trained models must be the same (BA of every trained defence equal); ``none`` differs on purpose (the
# grid trains a frozen-encoder head for max(epochs, 10) epochs) and so do the DAEs (another draw of the attacker's
# images), which the printed table shows.
PRESET_RUNNER = """
import sys
sys.path.insert(0, "evaluations")
from presets import preset_grids
from art_ssl.evaluation import run_grid
grid = preset_grids(
    "defences_64", tasks=("fashion-mnist-subset", "digits"), encoders=("simclr_r18",),
    defences=("none", "finetune", "trades", "genaf"), attacks=("pap_ugs", "advencoder"), attack_eps=(),
    surrogate_n=200, n_train=200, n_test=200, epochs=1, pgd_steps=1, task_epochs=("digits=1",),
    attack_settings={"surrogate_n": 200, "gen_epochs": 1, "gen_ngf": 8, "gen_nz_batch": 4},
)[0]
run_grid(grid, sys.argv[1], progress=False, perturbation_dir=sys.argv[2])
"""
OLD_DEFENCE_EVAL = [
    "evaluations/defence_eval.py",
    "--encoders",
    "simclr_r18",
    "--tasks",
    "fashion_mnist",
    "digits",
    "--defences",
    "none",
    "finetune",
    "trades",
    "genaf",
    "--attacks",
    "pap_ugs",
    "advencoder",
    "--n-train",
    "200",
    "--n-test",
    "200",
    "--epochs",
    "1",
    "--pgd-steps",
    "1",
    "--aa-n",
    "0",
    "--task-epochs",
    "digits=1",
    "--surrogate-n",
    "200",
    "--gen-epochs",
    "1",
    "--gen-ngf",
    "8",
    "--gen-nz-batch",
    "4",
]


def preset_vs_script(old: Path, new: Path, work: Path) -> bool:
    """Run both sides, print BA and RA side by side, and return whether every trained model's BA is equal."""
    work.mkdir(parents=True, exist_ok=True)
    old_csv, new_csv = work / "defence_eval.csv", work / "defences_64_preset.csv"
    for tree, argv in (
        (old, [RUNNER, *OLD_DEFENCE_EVAL, "--cache", str(work / "cache_old"), "--out", str(old_csv)]),
        (new, [PRESET_RUNNER, str(new_csv), str(work / "cache_new")]),
    ):
        env = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run([sys.executable, "-c", *argv], cwd=tree, env=env, check=True, capture_output=True)
    a = pd.read_csv(old_csv)
    b = pd.read_csv(new_csv).assign(task=lambda f: f.task.str.replace("fashion-mnist-subset", "fashion_mnist"))
    wide = b.pivot_table(index=["task", "defence"], columns="attack", values="RA").add_prefix("RA_new_")
    wide["BA_new"] = b.groupby(["task", "defence"])["BA"].first()
    table = a.set_index(["task", "defence"])[["BA", "RA_pap_ugs_eps10", "RA_advencoder_eps10"]].join(wide)
    print(table.to_string())
    trained = table.drop(index="none", level="defence")
    return bool(np.array_equal(trained["BA"].to_numpy(float), trained["BA_new"].to_numpy(float)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="checkout before the change")
    parser.add_argument("--new", default=".", help="checkout after the change")
    parser.add_argument("--scripts", nargs="*", default=["zepad_eval", "backdoor_eval"])
    parser.add_argument("--work", default=None, help="folder for the outputs (default: a temporary one)")
    parser.add_argument(
        "--preset-vs-script",
        action="store_true",
        help="compare the defences_64 preset with the old checkout's defence_eval.py instead",
    )
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="equivalence."))
    if args.preset_vs_script:
        same = preset_vs_script(Path(args.old).resolve(), Path(args.new).resolve(), work)
        print(f"trained models {'the same' if same else 'DIFFERENT'} (BA of every defence but none); outputs in {work}")
        sys.exit(0 if same else 1)
    failed = False
    for script in args.scripts:
        outputs = {}
        for side, tree in (("old", args.old), ("new", args.new)):
            outputs[side] = work / side / script
            run(Path(tree).resolve(), outputs[side], script)
        for name in commands(work)[script][1]:
            diff = compare(outputs["old"] / name, outputs["new"] / name)
            failed |= bool(diff)
            print(f"{script} {name}: {'same' if not diff else 'DIFFERENT ' + ', '.join(diff)}", flush=True)
    print(f"outputs in {work}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
