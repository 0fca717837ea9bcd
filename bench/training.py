"""Benchmark: training time and peak memory of the churn and upsell models.

Runs ``propensity train <task> --json`` in a subprocess per task (peak RSS is its own) on a data
directory holding raw tables and a monthly snapshot grid; makes one (generate + build) when
none is given.

    python -m bench.training [--data-dir DIR | --accounts 100000 --months 24] [--tasks churn,upsell]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _propensity(*args: str) -> list[str]:
    return [sys.executable, "-c", "from propensity_cli import app; app()", *args]


def _timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) of the child, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    began = time.perf_counter()
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024, done.stdout


def prepare(accounts: int, months: int, root: Path) -> Path:
    data = root / f"n{accounts}"
    subprocess.run(_propensity("data", "generate", "--accounts", str(accounts), "--months",
                               str(months), "--start", "2024-01-01", "--data-dir", str(data)),
                   check=True, capture_output=True)
    end_year, end_month = divmod(2024 * 12 + months, 12)
    subprocess.run(_propensity("features", "build", "--from", "2024-02-01", "--to",
                               f"{end_year}-{end_month + 1:02d}-01", "--data-dir", str(data)),
                   check=True, capture_output=True)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--tasks", default="churn,upsell")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="propensity-bench-train-"))
    try:
        data = args.data_dir or prepare(args.accounts, args.months, root)
        print(f"\n{'task':<8} {'train rows':>11} {'test rows':>10} {'seconds':>8} "
              f"{'peak MB':>8} {'ROC AUC':>8} {'logistic':>9} {'oracle':>7} {'ECE':>7}")
        for task in args.tasks.split(","):
            mlflow_dir = data / "mlflow"
            shutil.rmtree(mlflow_dir, ignore_errors=True)  # a fresh registry per measurement
            seconds, peak, out = _timed(_propensity("train", task, "--json", "--data-dir",
                                                    str(data)))
            r = json.loads(out)
            oracle = r["oracle"]["roc_auc"] if r.get("oracle") else float("nan")
            print(f"{task:<8} {r['rows']['train']:>11,} {r['rows']['test']:>10,} "
                  f"{seconds:>8.1f} {peak:>8.0f} {r['metrics']['roc_auc']:>8.4f} "
                  f"{r['baselines']['logistic']['roc_auc']:>9.4f} {oracle:>7.4f} "
                  f"{r['metrics']['ece']:>7.4f}")
            sys.stdout.flush()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
