"""Benchmark: `GET /v1/changes` latency at 10,000 accounts.

A generated book of 10,000 accounts x 13 months, its snapshots a week apart (2025-01-22 and
2025-01-29) scored into the score history by `serving.batch.score_duckdb` with the champions of
a small trained book (300 accounts, same feature catalogue, as `bench.serving` does). The
service's app is driven in process (Starlette's TestClient: routing, auth off, JSON or CSV),
one request at a time:

- cold: the first request of a generation (reads both history runs and both snapshots, encodes
  them, ranks the changes, explains the page's accounts);
- warm: the same page again, and other pages / an owner filter (explains only new accounts);
- CSV of all 10,000 (explains every account once; cached afterwards).

    python -m bench.changes [--workdir DIR] [--accounts 10000] [--repeat 20]

Work dir: --workdir, else $BENCH_WORKDIR, else <temp dir>/propensity_bench/changes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

SMALL = {"accounts": 300, "months": 16, "grid": ("2024-02-01", "2025-05-01")}
RUNS = (date(2025, 1, 22), date(2025, 1, 29))


def cli(*args: str, data: Path) -> None:
    from typer.testing import CliRunner

    from propensity_cli import app

    result = CliRunner().invoke(app, [*args, "--data-dir", str(data)])
    if result.exit_code != 0:
        raise SystemExit(f"{' '.join(args)} failed: {result.output}")


def small_book(work: Path) -> Path:
    data = work / "small"
    if not (data / ".complete").exists():
        cli("data", "generate", "--accounts", str(SMALL["accounts"]), "--months",
            str(SMALL["months"]), "--start", "2024-01-01", "--seed", "5", data=data)
        cli("features", "build", "--from", SMALL["grid"][0], "--to", SMALL["grid"][1], data=data)
        for task in ("churn", "upsell", "cross-sell"):
            cli("train", task, data=data)
        (data / ".complete").touch()
    return data


def large_book(work: Path, small: Path, accounts: int):
    from serving.batch import score_duckdb
    from serving.history import history_dir
    from serving.settings import ServingSettings

    data = work / f"large-{accounts}"
    settings = ServingSettings(data_dir=data, auth_enabled=False,
                               mlflow_tracking_uri=f"sqlite:///{small}/mlflow/mlflow.db")
    if not (data / ".complete").exists():
        cli("data", "generate", "--accounts", str(accounts), "--months", "13", "--start",
            "2024-01-01", "--seed", "7", data=data)
        for as_of in RUNS:
            cli("features", "build", "--as-of", str(as_of), data=data)
            score_duckdb(settings, as_of, out=str(history_dir(data)))
        (data / ".complete").touch()
    return settings


def timed(call) -> tuple[float, object]:
    began = time.perf_counter()
    out = call()
    return time.perf_counter() - began, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get(
        "BENCH_WORKDIR", Path(tempfile.gettempdir()) / "propensity_bench" / "changes")))
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    from fastapi.testclient import TestClient

    from serving.app import create_app

    settings = large_book(args.workdir, small_book(args.workdir), args.accounts)
    app = create_app(settings, load_on_start=False)
    ok, error = app.state.holder.reload()
    if not ok:
        raise SystemExit(error)
    scored = len(app.state.holder.current.scorer.ids)
    results: list[tuple[str, float]] = []
    with TestClient(app) as client:
        def get(**params):
            response = client.get("/v1/changes", params=params)
            if response.status_code != 200:
                raise SystemExit(response.text)
            return response

        seconds, first = timed(lambda: get(limit=50))
        results.append(("cold: first page of 50 (build the comparison)", seconds))
        body = first.json()
        warm = [timed(lambda: get(limit=50))[0] for _ in range(args.repeat)]
        results.append(("warm: the same page of 50 (median)", statistics.median(warm)))
        owner = body["items"][0]["owner"]
        seconds, _ = timed(lambda: get(limit=50, owner=owner))
        results.append((f"owner filter, first time ({owner})", seconds))
        seconds, _ = timed(lambda: get(limit=50, cursor=body["next_cursor"]))
        results.append(("next page of 50, first time", seconds))
        seconds, csv = timed(lambda: get(limit=10_000, format="csv"))
        results.append(("CSV of every account, first time (explains all)", seconds))
        seconds, _ = timed(lambda: get(limit=10_000, format="csv"))
        results.append(("CSV of every account, again", seconds))
        seconds, _ = timed(lambda: get(kind="upsell", limit=50))
        results.append(("cold: kind=upsell first page of 50", seconds))

    print(f"GET /v1/changes, {body['total']:,} accounts in both runs "
          f"({scored:,} served; {RUNS[0]} -> {RUNS[1]}), CSV {len(csv.content):,} bytes")
    for label, seconds in results:
        print(f"  {label:<55} {seconds * 1000:9.1f} ms")


if __name__ == "__main__":
    main()
