"""
What ``tests/core/test_distributed.py`` costs: its module fixture (all jobs in one spawned two-process gloo group, then
the single-process references) timed with the first ``--before`` jobs of its ``JOBS`` and with all of them,
interleaved (A/B, A/B, ...) in one run, as timings on a shared machine only compare within one run.

    OMP_NUM_THREADS=1 PYTHONPATH=. python tools/distributed_suite_time.py --before 10 --repeats 2
"""

from __future__ import annotations

import argparse
import tempfile
import time

from tests.core import distributed_jobs as jobs
from tests.core.test_distributed import JOBS


def fixture_seconds(selected: list[tuple[str, dict]]) -> tuple[float, float]:
    """Seconds of the spawned two-process suite and of the single-process references."""
    with tempfile.TemporaryDirectory(prefix="ddp_time_") as folder:
        start = time.perf_counter()
        jobs.run_spawned("suite", folder, world=2, jobs=selected)
        spawned = time.perf_counter() - start
        start = time.perf_counter()
        for i, (name, kwargs) in enumerate(selected):
            jobs.run_single(name, f"{folder}/one-{i}.pt", **kwargs)
        return spawned, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=int, required=True, help="Number of jobs of JOBS before the change.")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    for repeat in range(args.repeats):
        for label, selected in ((f"{args.before} jobs", JOBS[: args.before]), (f"{len(JOBS)} jobs", JOBS)):
            spawned, single = fixture_seconds(selected)
            print(
                f"repeat {repeat} {label}: spawned {spawned:.1f} s + single {single:.1f} s = {spawned + single:.1f} s"
            )


if __name__ == "__main__":
    main()
