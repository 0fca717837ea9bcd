"""Benchmark: how close the models come to the oracle (issue 12's first goal, gap <= 0.02 AUC).

For each seed it generates a book, builds the monthly snapshot grid and backtests churn and
upsell at three cut-offs (``training.train.backtest``, the simulator's oracle as reference):
one row per (seed, cut-off) with the model's and the oracle's ROC AUC on the same test rows,
then the mean gap per task and book size over every seed and cut-off against the goal. The gap
shrinks with the book (the model's variance does, the oracle's AUC does not), so ``--accounts``
takes several sizes and the summary has one row per task and size.

5,000 accounts x 24 months by default (about 3,400 test rows per cut-off): 3 books, 18 fits,
3.7 CPU-minutes (measured); at 3,000 accounts 2.2 CPU-minutes took 4.6 minutes of wall time
on 2 cores, so about 8 minutes are expected on an otherwise idle 2-core machine. Fewer
accounts make the per-cut-off AUCs noisier. The oracle is the simulator's; real data has none.

    python -m bench.models [--accounts 5000[,20000...]] [--months 24] [--seeds 1,2,3]
                           [--cutoffs 3] [--tasks churn,upsell] [--books DIR]

``--books DIR`` keeps the generated books (``DIR/accounts_N/seedS``) and reuses them on the
next run, so comparing two versions of the training code costs the fits only.
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
    """Generate a book with ``seed`` and build its monthly grid (unless ``root`` already holds
    it, complete: a ``.ready`` mark is written last); its training settings."""
    import pandas as pd

    from features.build import month_starts
    from features.pipeline import build_snapshots
    from simulator.generator import generate_into
    from training.settings import TrainingSettings

    data = root / f"seed{seed}"
    settings = TrainingSettings(data_dir=data, seed=seed)
    if (data / ".ready").exists():
        return settings
    shutil.rmtree(data, ignore_errors=True)
    generate_into(data, accounts, months, seed, START)
    end = (pd.Timestamp(START) + pd.DateOffset(months=months)).date()
    build_snapshots(settings, month_starts(date(2024, 2, 1), end))
    (data / ".ready").touch()
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


def summary(per_size: dict[int, dict[str, list[float]]]) -> list[dict]:
    """Per book size and task: mean and max gap over seeds and cut-offs, and the goal met."""
    return [{"accounts": size, "task": task, "mean": statistics.fmean(values),
             "max": max(values), "n": len(values), "met": statistics.fmean(values) <= GOAL}
            for size, tasks in per_size.items() for task, values in tasks.items() if values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", default="5000",
                        help="book sizes, comma-separated (e.g. 2000,5000,20000)")
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--cutoffs", type=int, default=3)
    parser.add_argument("--tasks", default="churn,upsell")
    parser.add_argument("--books", type=Path, default=None,
                        help="keep the generated books here and reuse them")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # MLflow and LightGBM chatter; the table is the output
    tasks = args.tasks.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    sizes = [int(a) for a in args.accounts.split(",")]

    keep = args.books is not None
    root = args.books or Path(tempfile.mkdtemp(prefix="propensity-bench-models-"))
    began, cpu = time.perf_counter(), time.process_time()
    per_size: dict[int, dict[str, list[float]]] = {a: {t: [] for t in tasks} for a in sizes}
    try:
        print(f"\noracle gap: {args.accounts} accounts x {args.months} months, seeds "
              f"{args.seeds}, {args.cutoffs} cut-offs")
        print(f"{'accounts':>8} {'task':<8} {'seed':>4} {'cut-off':>10} {'test rows':>9} "
              f"{'model AUC':>9} {'oracle AUC':>10} {'gap':>7}")
        for size in sizes:
            for seed in seeds:
                settings = prepare(size, args.months, seed, root / f"accounts_{size}")
                for task in tasks:
                    for r in gaps(settings, task, args.cutoffs):
                        per_size[size][task].append(r["gap"])
                        print(f"{size:>8,} {task:<8} {seed:>4} {r['test']:>10} {r['rows']:>9,} "
                              f"{r['model']:>9.4f} {r['oracle']:>10.4f} {r['gap']:>+7.4f}")
                        sys.stdout.flush()
                if not keep:
                    shutil.rmtree(settings.data_dir, ignore_errors=True)
        print(f"\n{'accounts':>8} {'task':<8} {'mean gap':>9} {'max gap':>8} {'goal':>6}  met")
        for row in summary(per_size):
            print(f"{row['accounts']:>8,} {row['task']:<8} {row['mean']:>+9.4f} "
                  f"{row['max']:>+8.4f} {GOAL:>6.2f}  {'yes' if row['met'] else 'no'}")
        print(f"({len(seeds)} seeds x {args.cutoffs} cut-offs per size in "
              f"{time.perf_counter() - began:.0f} s wall, {time.process_time() - cpu:.0f} CPU-s)")
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
