"""
Run a benchmark preset (``presets.GRID_PRESETS``) through the audit grid (:func:`art_ssl.evaluation.run_grid`): the
committed tables and ``art-ssl audit`` share one protocol, one results store and one perturbation cache. Rows go
to ``<out-dir>/<preset>.csv`` as each downstream model finishes; a killed run restarted with the same command skips
the finished cells. Render the tables afterwards (``attack_tables.py``, ``defence_tables.py``).

    python evaluations/run_preset.py defences_64                       # the committed table's budget (bench)
    python evaluations/run_preset.py attacks_64 attacks_64_curve       # several, in order
    python evaluations/run_preset.py defences_64 --profile quick --out-dir evaluations/results/quick
    python evaluations/run_preset.py defences_64 --profile full --device gpu --out-dir evaluations/results/full
    python evaluations/run_preset.py defences_64 --profile full --tiny --out-dir /tmp/full_tiny   # the path, on CPU
    python evaluations/run_preset.py --list                            # presets and their grids
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from presets import GRID_PRESETS, PROFILES, preset_grids

from art_ssl.evaluation import run_grid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("presets", nargs="*", help=f"one or more of {sorted(GRID_PRESETS)}")
    parser.add_argument("--profile", default="bench", choices=sorted(PROFILES), help="budgets (presets.PROFILES)")
    parser.add_argument("--tiny", action="store_true", help="shrink everything (presets.TINY): a code-path check")
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu", "auto"], help="device_type of the grid")
    parser.add_argument("--out-dir", default="evaluations/results", help="folder of <preset>.csv")
    parser.add_argument("--cache", default="evaluations/cache", help="folder of the cached universal perturbations")
    parser.add_argument("--encoders", nargs="+", default=None, help="replace the preset's encoders")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="replace the preset's seeds (0)")
    parser.add_argument("--backend", default="local", choices=["local", "ray"])
    parser.add_argument("--list", action="store_true", help="print the presets' grids and stop")
    args = parser.parse_args(argv)
    if not args.presets and not args.list:
        parser.error("name at least one preset (or --list)")
    unknown = [p for p in args.presets if p not in GRID_PRESETS]
    if unknown:
        parser.error(f"unknown preset(s) {unknown}; choose from {sorted(GRID_PRESETS)}")
    overrides = {} if args.encoders is None else {"encoders": tuple(args.encoders)}
    if args.seeds is not None:
        overrides["seeds"] = tuple(args.seeds)
    names = args.presets or sorted(GRID_PRESETS)
    if args.list:
        for name in names:
            for part in GRID_PRESETS[name]:
                print(f"{name}: {part}")
        return 0
    # every preset is checked (GridConfig validates every setting) before any of them runs
    plans = {name: preset_grids(name, args.profile, args.device, args.tiny, **overrides) for name in names}
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, grids in plans.items():
        start = time.perf_counter()
        for grid in grids:
            frame = run_grid(grid, out_dir / f"{name}.csv", backend=args.backend, perturbation_dir=args.cache)
            bad = frame[frame["status"].astype(str) != "ok"]
            for _, row in bad.iterrows():
                print(f"{name}: {row['encoder']} {row['task']} {row['defence']} {row['attack']}: {row['status']}")
        print(f"{name}: done in {(time.perf_counter() - start) / 60:.1f} min -> {out_dir / f'{name}.csv'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
