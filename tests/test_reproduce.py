"""The reproduction command (evaluations/reproduce.py): every step's options are accepted by its script, a failed
step stops the run and a second run continues after the steps that finished, and the README's tables are what
readme_tables.py renders from the committed results."""

from __future__ import annotations

import argparse
import importlib
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVALUATIONS = ROOT / "evaluations"


@pytest.fixture(scope="module")
def reproduce():
    sys.path.insert(0, str(EVALUATIONS))
    try:
        yield importlib.import_module("reproduce")
    finally:
        sys.path.remove(str(EVALUATIONS))


class Parsed(Exception):
    """Raised instead of running a script once its command line parsed."""


def parse_only(monkeypatch, argv: list[str]) -> argparse.Namespace:
    """Parse ``python *argv`` with the parser the script itself builds, and stop there."""
    real = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, args=None, namespace=None):
        raise Parsed(real(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    if argv[0] == "-m":
        from art_ssl.cli import main

        call = lambda: main(argv[2:])  # noqa: E731
    else:
        monkeypatch.setattr(sys, "argv", [str(ROOT / argv[0]), *argv[1:]])
        call = lambda: runpy.run_path(str(ROOT / argv[0]), run_name="__main__")  # noqa: E731
    with pytest.raises(Parsed) as parsed:
        call()
    return parsed.value.args[0]


@pytest.mark.parametrize("profile", ["quick", "bench", "full"])
def test_every_step_parses(reproduce, monkeypatch, tmp_path, profile):
    steps = reproduce.plan(profile, tmp_path, zoo=profile != "quick")
    assert [s.name for s in steps][-1] == "readme_tables"  # the README's tables last, after what they read
    for step in steps:
        with monkeypatch.context() as patch:
            patch.syspath_prepend(str(EVALUATIONS))
            namespace = parse_only(patch, step.argv)
        if "device" in namespace:
            assert namespace.device == ("gpu" if profile == "full" else "cpu")
        for key in ("out", "results_dir", "out_dir", "checkpoints", "cache"):  # writes stay in the profile's folders
            value = getattr(namespace, key, None)
            if value and profile != "bench" and not step.name.startswith("zoo_"):
                assert Path(value).is_relative_to(tmp_path), (step.name, key, value)


def test_bench_steps_are_the_committed_commands(reproduce):
    commands = "\n".join(s.command for s in reproduce.plan("bench", Path("evaluations/results")))
    committed = [
        "evaluations/run_preset.py --profile bench defences_64 --device cpu --cache evaluations/cache",
        "evaluations/zepad_eval.py --skip-genaf --aft-epochs 10 --n-train 4000 --adaptive-n 200 --aa-n 20",
        "evaluations/zepad_eval.py --skip-genaf --aft-epochs 10 --n-train 4000 --adaptive-n 200 --aa-n 20 "
        "--victim barlow_twins_r18 --auxiliary simclr_r18 --skip-transfer --adaptive-n 0",
        "evaluations/run_preset.py --profile bench defences_curve_64",
    ]
    for command in committed:
        assert command in commands


def test_failed_step_stops_and_rerun_continues(reproduce, monkeypatch, tmp_path):
    flag = tmp_path / "fixed"
    steps = [
        reproduce.Step("one", ["-c", f"open({str(tmp_path / 'ran_one')!r}, 'a').write('x')"]),
        reproduce.Step("two", ["-c", f"import os, sys; sys.exit(0 if os.path.exists({str(flag)!r}) else 3)"]),
        reproduce.Step("tables", ["-c", "print('tables')"]),
    ]
    monkeypatch.setattr(reproduce, "plan", lambda profile, out, zoo=False, tiny=False: steps)
    argv = ["--profile", "quick", "--out", str(tmp_path)]
    assert reproduce.main(argv) == 3
    log = (tmp_path / "reproduce_log.csv").read_text()
    assert ",one," in log and ",two," in log and ",tables," not in log
    flag.touch()
    assert reproduce.main(argv) == 0
    assert (tmp_path / "ran_one").read_text() == "x"  # the finished step was not run again
    assert "3 steps" in (tmp_path / "reproduce_log.md").read_text()


def test_bad_arguments(reproduce, tmp_path):
    with pytest.raises(ValueError, match="--zoo"):
        reproduce.plan("quick", tmp_path, zoo=True)
    with pytest.raises(ValueError, match="profile"):
        reproduce.plan("paper", tmp_path)
    with pytest.raises(SystemExit, match="unknown step 'attack'"):
        reproduce.main(["--profile", "quick", "--only", "attack", "--dry-run"])


def test_readme_tables_match_committed_results(monkeypatch):
    monkeypatch.syspath_prepend(str(EVALUATIONS))
    readme_tables = importlib.import_module("readme_tables")
    readme = (ROOT / "README.md").read_text()
    tables = readme_tables.render(EVALUATIONS / "results")
    assert set(tables) == {"zoo", "attacks", "defences"}
    for name, table in tables.items():
        assert f"<!-- table:{name} -->\n{table}\n<!-- /table:{name} -->" in readme


def test_new_run_starts_from_nothing(reproduce, monkeypatch, tmp_path):
    """Scripts resume from their --out CSV: a new run must not mistake an earlier run's rows for finished work."""
    script = tmp_path / "backdoor_eval.py"  # stands in for a resumable script
    script.write_text(
        "import pathlib, sys\nout = pathlib.Path(sys.argv[sys.argv.index('--out') + 1])\n"
        "sys.exit(4 if out.exists() else out.write_text('new') and 0)\n"
    )
    out = tmp_path / "results"
    (out / "cache").mkdir(parents=True)
    (out / "attacks_64.csv").write_text("stale")
    steps = [reproduce.Step("attacks", [str(script), "--out", str(out / "attacks_64.csv")])]
    monkeypatch.setattr(reproduce, "plan", lambda profile, out, zoo=False, tiny=False: steps)
    assert reproduce.main(["--profile", "quick", "--out", str(out)]) == 0
    assert (out / "attacks_64.csv").read_text() == "new" and not (out / "cache").exists()
    assert reproduce.main(["--profile", "quick", "--out", str(out)]) == 0  # finished: skipped, not re-run
    assert reproduce.main(["--profile", "quick", "--out", str(out), "--force"]) == 0  # --force: removed, re-run


def test_preset_steps_resume_from_their_own_csv_and_pass_tiny(reproduce, tmp_path):
    steps = {s.name: s for s in reproduce.plan("full", tmp_path, tiny=True)}
    step = steps["defences_64"]
    assert step.fresh == [tmp_path / "defences_64.csv"]  # a new run removes only this preset's rows
    assert "--tiny" in step.argv and step.argv[step.argv.index("--profile") + 1] == "full"
    assert "--tiny" not in reproduce.plan("full", tmp_path)[1].argv


def test_tiny_steps_parse_and_shrink(reproduce, monkeypatch, tmp_path):
    steps = reproduce.plan("full", tmp_path, tiny=True)
    assert set(reproduce.TINY_ARGS) <= {s.name for s in steps}  # no option set for a step that does not exist
    for step in steps:
        with monkeypatch.context() as patch:
            patch.syspath_prepend(str(EVALUATIONS))
            namespace = parse_only(patch, step.argv)
        for key in ("n_train", "epochs", "aft_epochs"):  # the appended (last) value is the one parsed
            if step.name in reproduce.TINY_ARGS and f"--{key.replace('_', '-')}" in reproduce.TINY_ARGS[step.name]:
                assert getattr(namespace, key) <= 256, (step.name, key)
    with pytest.raises(ValueError, match="--zoo.*--tiny"):
        reproduce.plan("full", tmp_path, zoo=True, tiny=True)
