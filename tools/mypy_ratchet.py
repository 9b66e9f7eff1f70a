"""
mypy on ``art_ssl`` as a ratchet: fails when the error count rises above the recorded baseline, so no change adds
type errors while the existing ones are being fixed (issue 17 wants a clean run; the baseline goes down to 0).

    python tools/mypy_ratchet.py            # check (make lint runs it)
    python tools/mypy_ratchet.py --update   # record a lower count after fixing errors
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "tools" / "mypy_baseline.txt"


def error_count() -> tuple[int, str]:
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "art_ssl", "--ignore-missing-imports", "--no-error-summary"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    lines = [line for line in run.stdout.splitlines() if re.search(r": error: ", line)]
    if run.returncode not in (0, 1):  # 2: mypy itself failed (bad config, crash)
        raise SystemExit(f"mypy failed to run:\n{run.stderr or run.stdout}")
    return len(lines), "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--update", action="store_true", help="record the current count as the baseline")
    args = parser.parse_args()
    count, text = error_count()
    baseline = int(BASELINE.read_text().split()[0])
    if args.update:
        if count > baseline:
            print(f"mypy: {count} errors, more than the baseline {baseline}; not recorded.")
            return 1
        BASELINE.write_text(f"{count}\n")
        print(f"mypy: baseline now {count} errors.")
        return 0
    if count > baseline:
        print(text)
        print(f"mypy: {count} errors, baseline {baseline}: a change added type errors (listed above).")
        return 1
    print(f"mypy: {count} errors (baseline {baseline}; the goal is 0).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
