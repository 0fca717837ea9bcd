"""Benchmark: data generation and the monthly feature grid at three sizes.

Each phase runs in its own process so that its peak memory (max RSS) is its own. Prints wall
time (median of the repeats), account-snapshots per second, peak memory, the ratio to the
issue's goals, and how time grows with accounts and events (log-log slope between sizes).

    python -m bench.features [--sizes 10000,30000,100000] [--months 24] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

GOALS = {  # from the foundation issue, for 100,000 accounts x 24 months on 2 cores
    "generate_s": 120.0,
    "build_s": 60.0,
    "build_rss_mb": 4096.0,
}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_generate(accounts: int, months: int, out: Path) -> dict:
    from simulator.generator import generate

    began = time.perf_counter()
    summary = generate(accounts, months, 42, date(2024, 1, 1), out / "raw", out / "truth")
    return {"seconds": time.perf_counter() - began, "rows": summary["rows"],
            "peak_rss_mb": _peak_rss_mb()}


def phase_build(months: int, out: Path) -> dict:
    from features.build import build_grid, feature_groups, month_starts
    from features.catalogue import catalogue_version
    from features.store import FeatureStore
    from features.validation import load_tables

    began = time.perf_counter()
    tables = load_tables(out / "raw")
    loaded = time.perf_counter() - began
    import pandas as pd

    end = (pd.Timestamp("2024-01-01") + pd.DateOffset(months=months)).date()
    dates = month_starts(date(2024, 2, 1), end)
    store = FeatureStore(out / "features")
    version = catalogue_version(feature_groups())
    rows = 0
    for as_of, snapshot in build_grid(tables, dates):
        store.write(as_of, snapshot, version)
        rows += snapshot.num_rows
    return {"seconds": time.perf_counter() - began, "validate_seconds": loaded,
            "snapshots": len(dates), "account_snapshots": rows, "peak_rss_mb": _peak_rss_mb()}


def _run_phase(name: str, accounts: int, months: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "bench.features", "--phase", name, "--accounts", str(accounts),
           "--months", str(months), "--out", str(out)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _slope(xs: list[float], ys: list[float]) -> float:
    """Exponent b in time ~ size^b between the smallest and largest size."""
    return math.log(ys[-1] / ys[0]) / math.log(xs[-1] / xs[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,30000,100000")
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3, help="runs per size (median quoted)")
    parser.add_argument("--phase", choices=["generate", "build"], help=argparse.SUPPRESS)
    parser.add_argument("--accounts", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    if args.phase == "generate":
        print(json.dumps(phase_generate(args.accounts, args.months, args.out)))
        return
    if args.phase == "build":
        print(json.dumps(phase_build(args.months, args.out)))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    root = Path(tempfile.mkdtemp(prefix="propensity-bench-", dir=args.workdir))
    results = []
    try:
        for n in sizes:
            gens, builds = [], []
            for _ in range(args.repeats):
                out = root / f"n{n}"
                shutil.rmtree(out, ignore_errors=True)
                gens.append(_run_phase("generate", n, args.months, out))
                builds.append(_run_phase("build", n, args.months, out))
            events = gens[0]["rows"]["usage_events"]
            results.append({
                "accounts": n, "usage_rows": events,
                "generate_s": statistics.median(g["seconds"] for g in gens),
                "generate_rss_mb": max(g["peak_rss_mb"] for g in gens),
                "build_s": statistics.median(b["seconds"] for b in builds),
                "validate_s": statistics.median(b["validate_seconds"] for b in builds),
                "build_rss_mb": max(b["peak_rss_mb"] for b in builds),
                "snapshots": builds[0]["snapshots"],
                "account_snapshots": builds[0]["account_snapshots"],
                "runs": args.repeats,
            })
            _print(results)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    _print_scaling(results)
    Path("bench-results").mkdir(exist_ok=True)
    Path("bench-results/features.json").write_text(json.dumps(results, indent=2))


def _print(results: list[dict]) -> None:
    print(f"\n{'accounts':>9} {'usage rows':>12} {'gen s':>7} {'gen MB':>7} {'build s':>8} "
          f"{'(valid. s)':>10} {'build MB':>9} {'acct-snap/s':>12} {'runs':>5}")
    for r in results:
        rate = r["account_snapshots"] / r["build_s"]
        print(f"{r['accounts']:>9,} {r['usage_rows']:>12,} {r['generate_s']:>7.1f} "
              f"{r['generate_rss_mb']:>7.0f} {r['build_s']:>8.1f} {r['validate_s']:>10.1f} "
              f"{r['build_rss_mb']:>9.0f} {rate:>12,.0f} {r['runs']:>5}")
    sys.stdout.flush()


def _print_scaling(results: list[dict]) -> None:
    if len(results) < 2:
        return
    acc = [r["accounts"] for r in results]
    ev = [r["usage_rows"] for r in results]
    print("\nscaling (time ~ size^b, smallest to largest size):")
    for key in ("generate_s", "build_s"):
        ys = [r[key] for r in results]
        print(f"  {key:<11} b = {_slope(acc, ys):.2f} in accounts, {_slope(ev, ys):.2f} in events")
    top = results[-1]
    print(f"\nagainst the goals at {top['accounts']:,} accounts (ratio = measured / goal, "
          "<= 1 meets it):")
    for key, goal in GOALS.items():
        print(f"  {key:<13} {top[key]:>8.1f} / {goal:>6.0f} = {top[key] / goal:.2f}")


if __name__ == "__main__":
    main()
