"""Benchmark: peak memory of one logistic-candidate fit, the ColumnTransformer design before
`training.linear_design.LinearDesign` against it, on a synthetic float64 model matrix.

Each design is fitted in a child process of its own (so each peak RSS, read with
``os.wait4``, is its own): the child makes the matrix (numerics with 0-40 % missing, one
constant, one all-missing; categoricals as level codes, a few unknown or missing), notes its
RSS, fits ``Pipeline([design, LogisticRegression(C=0.1, lbfgs)])`` and writes the
coefficients; the parent prints peak RSS, the peak above the matrix, CPU seconds, and whether
the coefficients are identical.

    python -m bench.logistic_memory [--rows 1200000 --numeric 75 --levels 3,4,5,6,8,12]
    python -m bench.logistic_memory --data-dir DIR [--task churn]

With ``--data-dir`` (raw tables and snapshots built by this code) the child runs ``train TASK``
up to the model choice and fits the logistic pipeline once on all the training rows (the
matrix `train` builds) instead of the cross-validation, then stops: "matrix MB" is then the
process RSS `train` holds before the fit.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def matrix(rows: int, numeric: int, levels: tuple[int, ...], seed: int = 0
           ) -> tuple[np.ndarray, np.ndarray]:
    """A C-ordered model matrix (numerics, then level codes) and a label from a few columns."""
    rng = np.random.default_rng(seed)
    x = np.empty((rows, numeric + len(levels)))
    for j in range(numeric):
        col = rng.normal(size=rows) * rng.uniform(0.1, 100) + rng.uniform(-10, 10)
        col[rng.random(rows) < rng.uniform(0.0, 0.4)] = np.nan
        x[:, j] = col
    x[:, 0] = 1.0  # constant
    x[:, 1] = np.nan  # all missing
    for c, k in enumerate(levels):
        codes = rng.integers(0, k + 1, rows).astype("float64")  # k: an unknown level
        codes[rng.random(rows) < 0.05] = np.nan
        x[:, numeric + c] = codes
    z = np.nan_to_num(x[:, 2] / 50 - x[:, 3] / 80) + (x[:, numeric] == 1) - 1.5
    y = (rng.random(rows) < 1 / (1 + np.exp(-z))).astype("int64")
    return x, y


def pipeline(kind: str, numeric: int, levels: tuple[int, ...]):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from training.baselines import LOGISTIC_C, STANDARD_CLIP
    from training.linear_design import LinearDesign

    if kind == "new":
        design = LinearDesign(numeric, levels, STANDARD_CLIP)
    else:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

        design = ColumnTransformer([
            ("numeric", Pipeline([
                ("impute", SimpleImputer(strategy="median", add_indicator=True,
                                         keep_empty_features=True)),
                ("scale", StandardScaler(copy=False)),
                ("clip", FunctionTransformer(np.clip, kw_args={"a_min": -STANDARD_CLIP,
                                                               "a_max": STANDARD_CLIP})),
            ]), list(range(numeric))),
            ("categorical", OneHotEncoder(
                categories=[np.arange(k, dtype="float64") for k in levels],
                handle_unknown="ignore"), list(range(numeric, numeric + len(levels)))),
        ], remainder="drop")
    return Pipeline([("columns", design),
                     ("model", LogisticRegression(C=LOGISTIC_C, max_iter=2000, random_state=0))])


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _fit(kind: str, x: np.ndarray, y: np.ndarray, numeric: int, levels: tuple[int, ...],
         out: Path) -> None:
    """Fit, save the coefficients, print the RSS before the fit and the lbfgs iterations."""
    unfitted = pipeline(kind, numeric, levels)
    before = _rss_mb()
    model = unfitted.fit(x, y).named_steps["model"]
    np.save(out, np.concatenate([model.coef_[0], model.intercept_]))
    print(f"{before:.0f} {model.n_iter_[0]}", flush=True)


def child_in_train(kind: str, data: Path, task: str, out: Path) -> None:
    """`train TASK` up to the choice; the logistic fit on its training matrix instead."""
    import training.selection
    from training.cli import load_settings
    from training.train import train

    def fit_instead(frame, y, _as_of, _accounts, schema, *_a, **_k):
        _fit(kind, frame, np.asarray(y).astype(int), len(schema.numeric),
             tuple(len(v) for v in schema.categorical.values()), out)
        os._exit(0)  # nothing after the fit is measured

    training.selection.select_and_refit = fit_instead
    train(task, load_settings(data))


def child(kind: str, rows: int, numeric: int, levels: tuple[int, ...], out: Path) -> None:
    pipeline(kind, numeric, levels)  # imports first: "matrix MB" is the process with the matrix
    x, y = matrix(rows, numeric, levels)
    _fit(kind, x, y, numeric, levels, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_200_000)
    parser.add_argument("--numeric", type=int, default=75)
    parser.add_argument("--levels", default="3,4,5,6,8,12")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--task", default="churn")
    parser.add_argument("--child", choices=["old", "new"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    levels = tuple(int(v) for v in args.levels.split(","))
    if args.child and args.data_dir:
        child_in_train(args.child, args.data_dir, args.task, args.out)
        return
    if args.child:
        child(args.child, args.rows, args.numeric, levels, args.out)
        return
    if args.data_dir:
        print(f"train {args.task} on {args.data_dir}: one logistic fit on all training rows")
    else:
        print(f"{args.rows:,} rows x {args.numeric + len(levels)} columns ({args.numeric} "
              f"numeric, {len(levels)} categorical)")
    print(f"{'design':<18} {'peak MB':>8} {'matrix MB':>9} {'above':>7} {'CPU s':>7} "
          f"{'wall s':>7} {'iters':>6}")
    coefs = {}
    with tempfile.TemporaryDirectory(prefix="l1-logistic-") as tmp:
        for kind in ("old", "new"):
            out = Path(tmp) / f"{kind}.npy"
            began = time.perf_counter()
            where = (["--data-dir", str(args.data_dir), "--task", args.task] if args.data_dir
                     else ["--rows", str(args.rows), "--numeric", str(args.numeric),
                           "--levels", args.levels])
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.logistic_memory", "--child", kind, *where,
                 "--out", str(out)], stdout=subprocess.PIPE)
            text = proc.stdout.read().decode().strip().splitlines()[-1]
            _, status, usage = os.wait4(proc.pid, 0)
            if os.waitstatus_to_exitcode(status):
                raise RuntimeError(f"the {kind} child failed")
            wall = time.perf_counter() - began
            base, iters = text.split()
            peak = usage.ru_maxrss / 1024
            name = "ColumnTransformer" if kind == "old" else "LinearDesign"
            print(f"{name:<18} {peak:>8.0f} {float(base):>9.0f} {peak - float(base):>7.0f} "
                  f"{usage.ru_utime + usage.ru_stime:>7.1f} {wall:>7.1f} {iters:>6}",
                  flush=True)
            coefs[kind] = np.load(out)
    diff = float(np.max(np.abs(coefs["old"] - coefs["new"])))
    print(f"coefficients identical: {np.array_equal(coefs['old'], coefs['new'])} "
          f"(max |difference| {diff:.3g})")


if __name__ == "__main__":
    main()
