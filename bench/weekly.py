"""Benchmark (issue 13): 48 weekly snapshots of a book of ~18 M daily usage rows, by the CLI.

The generator writes a book of ``--accounts`` x ``--months`` (3,000 x 13 by default) whose usage
is denser than the default book's (``--usage-activity`` / ``--usage-sessions``: ~15 usage rows
per account-day, the volume of a real book of daily usage); then ``propensity features build
--every week`` builds the last ``--weeks`` weekly snapshots of it, each run in a fresh process
(process start, validation and writing count). Prints the median wall time, the CPU time
(user + system, all threads) and the peak memory of the runs, and the ratio to the 2,626 s of
the published SQL method on PostgreSQL for the same 48 weekly dates (goal: <= 25 s, >= 100x).
Every build runs under a DuckDB memory limit (``--memory-limit``, the ``duckdb_memory_limit``
setting).

    python -m bench.weekly [--accounts 3000] [--months 13] [--usage-activity 16]
        [--usage-sessions 1.8] [--weeks 48] [--repeats 3] [--memory-limit 3GB] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

POSTGRES_WEEKLY_S = 2626.0  # issue 13: 48 weekly snapshots by a published SQL method
GOAL_S = 25.0
START = date(2024, 1, 1)
MEMORY_LIMIT_ENV = "PROPENSITY_DUCKDB_MEMORY_LIMIT"  # the duckdb_memory_limit setting
CLI = [sys.executable, "-c", "import propensity_cli; propensity_cli.app()"]


def run(args: list[str], env: dict[str, str]) -> dict:
    """One command in a fresh process: wall seconds, CPU seconds and peak memory (its own)."""
    began = time.perf_counter()
    child = subprocess.Popen(CLI + args, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - began
    error = child.stderr.read().decode()
    child.stderr.close()
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"propensity {' '.join(args)} failed: {error[-2000:]}")
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024}


def weekly_dates(months: int, weeks: int) -> tuple[date, date]:
    """The first and last of the ``weeks`` last Mondays on or before the export's end."""
    index = START.year * 12 + START.month - 1 + months
    end = date(index // 12, index % 12 + 1, 1)
    last = end - timedelta(days=end.weekday())
    return last - timedelta(weeks=weeks - 1), last


def usage_rows(data: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(data / "raw" / "usage_events.parquet").metadata.num_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--months", type=int, default=13)
    parser.add_argument("--usage-activity", type=float, default=16.0)
    parser.add_argument("--usage-sessions", type=float, default=1.8)
    parser.add_argument("--weeks", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3, help="builds (median quoted)")
    parser.add_argument("--memory-limit", default="3GB")
    parser.add_argument("--data", type=Path, default=None,
                        help="data directory to use (generated there if it has no raw/); "
                             "default: a temporary one, removed after")
    args = parser.parse_args()

    env = {**os.environ, MEMORY_LIMIT_ENV: args.memory_limit}
    data = args.data or Path(tempfile.mkdtemp(prefix="propensity-weekly-"))
    try:
        generated = None
        if not (data / "raw").exists():
            generated = run(["data", "generate", "--accounts", str(args.accounts), "--months",
                             str(args.months), "--start", str(START), "--seed", "42",
                             "--usage-activity", str(args.usage_activity),
                             "--usage-sessions", str(args.usage_sessions),
                             "--data-dir", str(data)], env)
        first, last = weekly_dates(args.months, args.weeks)
        build = ["features", "build", "--from", str(first), "--to", str(last), "--every",
                 "week", "--data-dir", str(data)]
        runs = []
        for _ in range(args.repeats):
            shutil.rmtree(data / "features", ignore_errors=True)
            runs.append(run(build, env))
        snapshots = len(list((data / "features").glob("as_of=*")))
        result = {
            "accounts": args.accounts, "months": args.months, "usage_rows": usage_rows(data),
            "usage_activity": args.usage_activity, "usage_sessions": args.usage_sessions,
            "snapshots": snapshots, "first": str(first), "last": str(last),
            "generate": generated, "runs": runs, "memory_limit": args.memory_limit,
            **{f"{key}_median": statistics.median(r[key] for r in runs)
               for key in ("seconds", "cpu_seconds")},
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        }
    finally:
        if args.data is None:
            shutil.rmtree(data, ignore_errors=True)
    report(result)
    Path("bench-results").mkdir(exist_ok=True)
    Path("bench-results/weekly.json").write_text(json.dumps(result, indent=2))


def report(r: dict) -> None:
    seconds = r["seconds_median"]
    if r["generate"]:
        g = r["generate"]
        per_day = r["usage_rows"] / r["accounts"] / (30.4 * r["months"])
        print(f"generated {r['accounts']:,} accounts x {r['months']} months, "
              f"{r['usage_rows']:,} usage rows ({per_day:.1f} per account-day): "
              f"{g['seconds']:.1f} s, {g['peak_rss_mb']:.0f} MB")
    print(f"\n{r['snapshots']} weekly snapshots ({r['first']} .. {r['last']}) of "
          f"{r['accounts']:,} accounts, {r['usage_rows']:,} usage rows, by the command line "
          f"(DuckDB memory limit {r['memory_limit']}), median of {len(r['runs'])}:")
    for i, run_ in enumerate(r["runs"], 1):
        print(f"  run {i}: {run_['seconds']:6.1f} s wall {run_['cpu_seconds']:6.1f} CPU-s "
              f"{run_['peak_rss_mb']:6.0f} MB")
    print(f"  median {seconds:6.1f} s wall (goal <= {GOAL_S:.0f}), "
          f"{r['cpu_seconds_median']:.1f} CPU-s, peak {r['peak_rss_mb']:.0f} MB\n"
          f"  {POSTGRES_WEEKLY_S / seconds:.0f}x the {POSTGRES_WEEKLY_S:,.0f} s of the SQL method "
          f"on PostgreSQL (goal >= 100x, i.e. <= {GOAL_S:.0f} s)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
