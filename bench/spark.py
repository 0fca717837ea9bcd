"""Benchmark: one feature snapshot and batch scoring of every account, Spark local[2] against
DuckDB on the same machine.

Per size: generate a book (``--months`` of history), then in a subprocess per phase, so that
each phase's peak memory is its own: build the snapshot at the extraction date on DuckDB and on
Spark, then score it on each engine with small models trained once on a separate book. Peak
memory is sampled over the phase's whole process tree (Python, Spark's JVM, its Python
workers), every 0.2 s. Prints wall time and peak memory per phase and engine, and how they grow
between sizes (log-log slope).

    python -m bench.spark [--sizes 1000000] [--months 13] [--reasons 3] [--driver-memory 6g]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

from bench.features import _slope

START = date(2024, 1, 1)
MODEL_BOOK = {"accounts": 2_000, "months": 16}  # the models scored with (trained once)
PHASES = ("build_duckdb", "build_spark", "score_duckdb", "score_spark")


# --- process-tree memory -------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _tree_rss_mb(pid: int) -> float:
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
        todo += _children(p)
    return total / 1024


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[dict, float]:
    """Run a phase; its JSON line and the peak RSS (MB) of its process tree."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1]), peak[0]


# --- phases (each in its own process) ------------------------------------------------------
def _settings(book: Path, models: Path, driver_memory: str):
    from serving.settings import ServingSettings  # the base's settings and serving's

    return ServingSettings(
        data_dir=book, mlflow_tracking_uri=f"sqlite:///{models / 'mlflow' / 'mlflow.db'}",
        spark_master="local[2]",
        spark_conf={"spark.driver.memory": driver_memory, "spark.ui.enabled": "false"},
    )


def as_of_of(months: int) -> date:
    """The extraction date of a book generated from START: its newest possible snapshot."""
    year, month = divmod(START.month - 1 + months, 12)
    return date(START.year + year, month + 1, 1)


def phase(name: str, book: Path, models: Path, months: int, args) -> dict:
    settings = _settings(book, models, args.driver_memory)
    as_of = as_of_of(months)
    began = time.perf_counter()
    if name == "build_duckdb":
        from features.pipeline import build_snapshots

        built, _ = build_snapshots(settings, [as_of])
        accounts = built[0][1]
    elif name == "build_spark":
        from features.spark.build import build_and_store
        from features.spark.session import spark_session

        spark = spark_session(settings.spark_master, settings.spark_conf)
        built, _, _ = build_and_store(spark, lambda _run: settings.feature_spec(), [as_of],
                                      str(settings.raw_dir), str(book / "features_spark"))
        accounts = built[0][1]
    elif name == "score_duckdb":
        from serving.batch import score_duckdb

        accounts = score_duckdb(settings, as_of, str(book / "scores_duckdb"), args.reasons).accounts
    else:
        from features.spark.session import spark_session
        from serving.batch import score_spark

        spark = spark_session(settings.spark_master, settings.spark_conf)
        accounts = score_spark(spark, settings, as_of, str(book / "scores_spark"), args.reasons,
                               features_uri=str(book / "features_spark")).accounts
    return {"seconds": time.perf_counter() - began, "accounts": accounts}


# --- orchestration ---------------------------------------------------------------------------
def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from propensity_cli import app; app()", *args]


def train_models(root: Path) -> Path:
    """A small trained book whose champions score the big ones (model size, not data, is
    what scoring time depends on)."""
    data = root / "models"
    shutil.rmtree(data, ignore_errors=True)  # always today's pyfunc code
    n, months = MODEL_BOOK["accounts"], MODEL_BOOK["months"]
    end = as_of_of(months)
    for args in (
        ("data", "generate", "--accounts", str(n), "--months", str(months), "--start",
         START.isoformat()),
        ("features", "build", "--from", "2024-02-01", "--to", end.isoformat()),
        ("train", "churn"), ("train", "upsell"), ("train", "cross-sell"),
    ):
        subprocess.run(_cli(*args, "--data-dir", str(data)), check=True, capture_output=True)
    return data


def generate_book(accounts: int, months: int, book: Path) -> dict:
    """Generate a book (or reuse one a ``--keep`` run left complete); its sizes and cost."""
    done = book / "generated.json"
    if done.exists():
        return json.loads(done.read_text())
    shutil.rmtree(book, ignore_errors=True)
    gen, peak = run_measured([sys.executable, "-m", "bench.features", "--phase", "generate",
                              "--accounts", str(accounts), "--months", str(months),
                              "--out", str(book)])
    info = {"usage_rows": gen["rows"]["usage_events"], "generate_s": gen["seconds"],
            "generate_mb": peak}
    done.write_text(json.dumps(info))
    return info


def measure_size(accounts: int, args, root: Path, models: Path) -> dict:
    """Every phase at one size; a failed phase is reported and recorded as NaN."""
    book = root / f"n{accounts}-m{args.months}"
    row = {"accounts": accounts, **generate_book(accounts, args.months, book)}
    for name in PHASES:
        cmd = [sys.executable, "-m", "bench.spark", "--phase", name, "--book", str(book),
               "--models", str(models), "--months", str(args.months), "--reasons",
               str(args.reasons), "--driver-memory", args.driver_memory]
        try:
            result, peak = run_measured(cmd, {"MLFLOW_DISABLE_TELEMETRY": "true"})
        except RuntimeError as exc:
            print(f"  {accounts:>9,} {name:<13} FAILED: {exc}", flush=True)
            result, peak = {"seconds": math.nan, "accounts": 0}, math.nan
        row[f"{name}_s"], row[f"{name}_mb"] = result["seconds"], peak
        row["snapshot_accounts"] = max(row.get("snapshot_accounts", 0), result["accounts"])
        _print_phase(accounts, name, result["seconds"], peak)
    if not args.keep:
        shutil.rmtree(book, ignore_errors=True)
    return row


def _print_phase(accounts: int, name: str, seconds: float, peak: float) -> None:
    print(f"  {accounts:>9,} {name:<13} {seconds:>8.1f} s {peak:>8.0f} MB", flush=True)


def print_table(rows: list[dict]) -> None:
    print(f"\n{'accounts':>9} {'events':>12} {'scored':>9} | {'build s':>15} {'build MB':>15} | "
          f"{'score s':>15} {'score MB':>15}")
    print(f"{'':>9} {'':>12} {'':>9} | {'duckdb':>7} {'spark':>7} {'duckdb':>7} {'spark':>7} | "
          f"{'duckdb':>7} {'spark':>7} {'duckdb':>7} {'spark':>7}")
    for r in rows:
        print(f"{r['accounts']:>9,} {r['usage_rows']:>12,} {r['snapshot_accounts']:>9,} | "
              f"{r['build_duckdb_s']:>7.1f} {r['build_spark_s']:>7.1f} "
              f"{r['build_duckdb_mb']:>7.0f} {r['build_spark_mb']:>7.0f} | "
              f"{r['score_duckdb_s']:>7.1f} {r['score_spark_s']:>7.1f} "
              f"{r['score_duckdb_mb']:>7.0f} {r['score_spark_mb']:>7.0f}")
    if len(rows) > 1:
        acc = [r["accounts"] for r in rows]
        print("\nscaling (value ~ accounts^b, smallest to largest size):")
        for name in PHASES:
            b_time = _slope(acc, [r[f"{name}_s"] for r in rows])
            b_mem = _slope(acc, [r[f"{name}_mb"] for r in rows])
            print(f"  {name:<13} time b = {b_time:.2f}, peak memory b = {b_mem:.2f}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000000", help="comma list of account counts")
    parser.add_argument("--months", type=int, default=13, help="months of history per book")
    parser.add_argument("--reasons", type=int, default=3, help="top reasons per model (0: none)")
    parser.add_argument("--driver-memory", default="6g", help="Spark driver (local mode) heap")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true",
                        help="keep the books and models in --workdir and reuse them next time")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--book", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--models", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        print(json.dumps(phase(args.phase, args.book, args.models, args.months, args)))
        return
    if args.keep and args.workdir is None:
        parser.error("--keep needs --workdir")
    root = (args.workdir / "propensity-bench-spark" if args.keep else
            Path(tempfile.mkdtemp(prefix="propensity-bench-spark-", dir=args.workdir)))
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        began = time.perf_counter()
        models = train_models(root)
        print(f"models: {MODEL_BOOK['accounts']:,}-account book trained in "
              f"{time.perf_counter() - began:.0f} s", flush=True)
        for n in (int(s) for s in args.sizes.split(",")):
            rows.append(measure_size(n, args, root, models))
            print_table(rows)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    save(rows, args)


def save(rows: list[dict], args, path: Path = Path("bench-results/spark.json")) -> None:
    """Merge into the saved results (by account count, same months and reasons), so sizes
    can be measured in separate runs."""
    key = {"months": args.months, "reasons": args.reasons, "cpus": os.cpu_count()}
    saved = json.loads(path.read_text()) if path.exists() else {}
    by_size = {r["accounts"]: r for r in saved.get("rows", [])} if saved.get("key") == key else {}
    by_size.update({r["accounts"]: r for r in rows})
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"key": key, "rows": [by_size[n] for n in sorted(by_size)]},
                               indent=2))


if __name__ == "__main__":
    main()
