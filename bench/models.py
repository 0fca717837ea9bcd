"""Benchmark: how close the models come to the oracle (issue 12's first goal, gap <= 0.02 AUC).

For each seed it generates a book, builds the monthly snapshot grid and backtests churn and
upsell at three cut-offs (``training.train.backtest``, the simulator's oracle as reference):
one row per (seed, cut-off) with the model's and the oracle's ROC AUC on the same test rows,
then the mean gap per task over every seed and cut-off against the goal.

5,000 accounts x 24 months by default (about 3,400 test rows per cut-off): 3 books, 18 fits,
3.7 CPU-minutes (measured); at 3,000 accounts 2.2 CPU-minutes took 4.6 minutes of wall time
on 2 cores, so about 8 minutes are expected on an otherwise idle 2-core machine. Fewer
accounts make the per-cut-off AUCs noisier. The oracle is the simulator's; real data has none.

    python -m bench.models [--accounts 5000] [--months 24] [--seeds 1,2,3] [--cutoffs 3]
                           [--tasks churn,upsell]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

GOAL = 0.02  # the oracle gap the issue asks for, as a mean over seeds and cut-offs
START = date(2024, 1, 1)


def prepare(accounts: int, months: int, seed: int, root: Path):
    """Generate a book with ``seed`` and build its monthly grid; its training settings."""
    import pandas as pd

    from features.build import month_starts
    from features.pipeline import build_snapshots
    from simulator.generator import generate_into
    from training.settings import TrainingSettings

    data = root / f"seed{seed}"
    generate_into(data, accounts, months, seed, START)
    settings = TrainingSettings(data_dir=data, seed=seed)
    end = (pd.Timestamp(START) + pd.DateOffset(months=months)).date()
    build_snapshots(settings, month_starts(date(2024, 2, 1), end))
    return settings


def gaps(settings, task: str, cutoffs: int) -> list[dict]:
    """One row per cut-off: test date, model and oracle ROC AUC, gap (oracle - model)."""
    from simulator.oracle import OracleReference
    from simulator.truth import truth_dir
    from training.train import backtest

    rows = backtest(task, settings, cutoffs,
                    reference=OracleReference(truth_dir(settings.data_dir)))["cutoffs"]
    out = []
    for r in rows:
        model, oracle = r["model"]["roc_auc"], r["oracle"]["roc_auc"]
        out.append({"test": r["test"], "rows": r["rows_test"], "model": model,
                    "oracle": oracle, "gap": oracle - model})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=5_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--cutoffs", type=int, default=3)
    parser.add_argument("--tasks", default="churn,upsell")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # MLflow and LightGBM chatter; the table is the output
    tasks = args.tasks.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]

    root = Path(tempfile.mkdtemp(prefix="propensity-bench-models-"))
    began = time.perf_counter()
    per_task: dict[str, list[float]] = {t: [] for t in tasks}
    try:
        print(f"\noracle gap: {args.accounts:,} accounts x {args.months} months, seeds "
              f"{args.seeds}, {args.cutoffs} cut-offs")
        print(f"{'task':<8} {'seed':>4} {'cut-off':>10} {'test rows':>9} {'model AUC':>9} "
              f"{'oracle AUC':>10} {'gap':>7}")
        for seed in seeds:
            settings = prepare(args.accounts, args.months, seed, root)
            for task in tasks:
                for r in gaps(settings, task, args.cutoffs):
                    per_task[task].append(r["gap"])
                    print(f"{task:<8} {seed:>4} {r['test']:>10} {r['rows']:>9,} "
                          f"{r['model']:>9.4f} {r['oracle']:>10.4f} {r['gap']:>+7.4f}")
                    sys.stdout.flush()
            shutil.rmtree(settings.data_dir, ignore_errors=True)
        print(f"\n{'task':<8} {'mean gap':>9} {'max gap':>8} {'goal':>6}  met")
        for task, values in per_task.items():
            mean = statistics.fmean(values)
            print(f"{task:<8} {mean:>+9.4f} {max(values):>+8.4f} {GOAL:>6.2f}  "
                  f"{'yes' if mean <= GOAL else 'no'}")
        print(f"({len(seeds)} seeds x {args.cutoffs} cut-offs in "
              f"{time.perf_counter() - began:.0f} s)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
