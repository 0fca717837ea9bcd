"""Benchmark: the score history's read path, ``GET /v1/accounts/{id}/history``, over a year of
weekly runs (52 partitions of 10,000 accounts, the batch-score layout with realistic reasons).

Writes the partitions with the daily run's own writer (``serving.batch.write_local_partition``),
then times ``ScoreHistory.account`` and the API route (through FastAPI's TestClient, without
the network) on random accounts, and prints one JSON line: size on disk per run, median and p95
latency and median CPU time in milliseconds, with the machine's load average.

    python -m bench.run [--runs 52] [--accounts 10000] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REASON = {"feature": "events_per_seat_90d", "description": "Product events per paid seat in "
          "the last 90 days", "contribution": 0.3093}
REASONS = json.dumps({"raising": [REASON] * 3, "lowering": [REASON] * 3})


def run_table(as_of: date, accounts: int, rng: np.random.Generator) -> pa.Table:
    """One run's scores in the batch file's schema (OUTPUT_SCHEMA), by account."""
    from serving.batch import OUTPUT_SCHEMA

    columns = {}
    for field in OUTPUT_SCHEMA:
        if field.name == "account_id":
            columns[field.name] = pa.array([f"A{i:07d}" for i in range(accounts)])
        elif field.name == "as_of":
            columns[field.name] = pa.array([as_of] * accounts, pa.date32())
        elif field.type == pa.float64():
            columns[field.name] = pa.array(rng.random(accounts))
        elif field.name.endswith("_reasons"):
            columns[field.name] = pa.array([REASONS] * accounts)
        else:
            columns[field.name] = pa.array([f"{field.name}-{i % 50}" for i in range(accounts)])
    return pa.table(columns, schema=OUTPUT_SCHEMA)


def write_history(root: Path, runs: int, accounts: int) -> list[date]:
    from serving.batch import PART, write_local_partition

    rng = np.random.default_rng(7)
    first = date(2025, 1, 6)
    dates = [first + timedelta(days=7 * k) for k in range(runs)]
    for k, day in enumerate(dates):
        table = run_table(day, accounts, rng)
        note = json.dumps({"as_of": day.isoformat(), "engine": "duckdb",
                           "catalogue_version": "bench",
                           "models": {"churn": {"uri": "models:/propensity-churn/1",
                                                "version": str(1 + k // 13)}}})
        write_local_partition(root, day, lambda d, t=table: pq.write_table(t, d / PART), note)
    return dates


def timed(call, times: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (this process, all threads) milliseconds per call: on a shared machine
    the CPU time is the steadier figure."""
    wall, cpu = [], []
    for _ in range(times):
        began, began_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append((time.perf_counter() - began) * 1000)
        cpu.append((time.process_time() - began_cpu) * 1000)
    return wall, cpu


def summary(measured: tuple[list[float], list[float]]) -> dict:
    wall, cpu = sorted(measured[0]), sorted(measured[1])
    return {"median_ms": round(statistics.median(wall), 1),
            "p95_ms": round(wall[int(0.95 * (len(wall) - 1))], 1),
            "cpu_median_ms": round(statistics.median(cpu), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=52)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.history import ScoreHistory, history_dir
    from serving.settings import ServingSettings

    data = Path(tempfile.mkdtemp(prefix="propensity-bench-history-"))
    began = time.perf_counter()
    write_history(history_dir(data), args.runs, args.accounts)
    write_s = time.perf_counter() - began
    history = ScoreHistory(history_dir(data))
    sizes = [f.stat().st_size for f in (history.root / ".versions").rglob("*") if f.is_file()]
    rng = np.random.default_rng(1)
    ids = [f"A{i:07d}" for i in rng.integers(0, args.accounts, args.requests)]
    it = iter(ids * 2)
    reader = timed(lambda: history.account(next(it)), args.requests)
    client = TestClient(create_app(ServingSettings(data_dir=data, auth_enabled=False),
                                   load_on_start=False))
    answer = client.get(f"/v1/accounts/{ids[0]}/history")
    assert answer.status_code == 200 and len(answer.json()["items"]) == args.runs, answer.text
    it = iter(ids * 2)
    route = timed(lambda: client.get(f"/v1/accounts/{next(it)}/history"), args.requests)
    print(json.dumps({
        "load_average_1m": round(os.getloadavg()[0], 1), "cores": os.cpu_count(),
        "runs": args.runs, "accounts": args.accounts, "requests": args.requests,
        "write_s": round(write_s, 1),
        "mb_per_run": round(sum(sizes) / args.runs / 1e6, 2),
        "reader": summary(reader), "route": summary(route),
    }))


if __name__ == "__main__":
    main()
