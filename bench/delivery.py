"""Benchmark: publishing one daily run into the CRM (serving.delivery.publish).

Two synthetic runs a week apart of N accounts (default 100,000) in the score history, with the
batch files' full shape (reasons JSON of three models, three reasons per direction) and an
external id per account; the second run moves a share of the accounts (default 20 %) past the
change threshold. Measured: the files (both CSV and Parquet, full and changed) and the webhooks
of the changed accounts to a local receiver (threads, answering 200 at once), each alone.

    python -m bench.delivery [--accounts 100000] [--moved 0.2] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from serving.batch import OUTPUT_SCHEMA, write_local_partition
from serving.delivery import publish
from serving.history import ScoreHistory, history_dir
from serving.row import REASON_COLUMNS
from serving.settings import ServingSettings

AS_OF = date(2025, 3, 3)
FEATURES = [f"events_{k}_30d" for k in range(12)]


def reasons(rng: np.random.Generator, n: int) -> list[str]:
    """n reasons cells of 3 raising and 3 lowering contributions (a few distinct ones)."""
    def one(feature: str, contribution: float) -> dict:
        return {"feature": feature, "contribution": round(contribution, 4),
                "description": f"Product events of kind {feature[7:-4]} in the last 30 days"}

    cells = []
    for _ in range(64):
        picked = rng.choice(FEATURES, 6, replace=False)
        sizes = sorted(rng.random(6).tolist(), reverse=True)
        cells.append(json.dumps({
            "raising": [one(picked[k], sizes[k]) for k in range(3)],
            "lowering": [one(picked[k], -sizes[k - 3]) for k in range(3, 6)]}))
    return [cells[i] for i in rng.integers(0, len(cells), n)]


def run_table(rng: np.random.Generator, n: int, as_of: date, churn: np.ndarray,
              upsell: np.ndarray) -> pa.Table:
    ids = [f"A{i:07d}" for i in range(n)]
    arr = np.round(1000 + 100_000 * np.arange(n) / n, 2)
    tiers = np.where(churn >= 0.5, "high", np.where(churn >= 0.2, "medium", "low"))
    frame = pd.DataFrame({
        "account_id": ids, "as_of": as_of, "name": [f"Company {i}" for i in range(n)],
        "owner": rng.choice(["Ann", "Bob", "Cy", "Dee"], n), "segment": "SMB", "arr": arr,
        "churn_probability": churn, "risk_tier": tiers, "arr_at_risk": arr * churn,
        "upsell_probability": upsell, "expected_expansion": arr * upsell * 0.2,
        "next_best_product": "Reporting", "next_best_product_probability": 0.1,
        "expected_cross_sell_arr": 500.0, "play": "retain",
        **{column: reasons(rng, n) for column in REASON_COLUMNS.values()},
    })
    return pa.Table.from_pandas(frame[OUTPUT_SCHEMA.names], schema=OUTPUT_SCHEMA,
                                preserve_index=False)


def make_history(data_dir: Path, n: int, moved: float, seed: int = 7) -> date:
    rng = np.random.default_rng(seed)
    before = rng.random(n) * 0.6
    after = before.copy()
    picked = rng.random(n) < moved
    upsell = rng.random(n) * 0.3
    after[picked] = np.clip(before[picked] + 0.1, 0, 1)
    earlier = AS_OF - timedelta(days=7)
    note = json.dumps({"models": {"churn": {"uri": "u", "version": "3"},
                                  "upsell": {"uri": "u", "version": "1"}}})
    for as_of, churn in ((earlier, before), (AS_OF, after)):
        table = run_table(rng, n, as_of, churn, upsell)
        write_local_partition(history_dir(data_dir), as_of,
                              lambda d, t=table: pq.write_table(t, d / "part-0.parquet"), note)
    raw = data_dir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"account_id": [f"A{i:07d}" for i in range(n)],
                  "external_id": [f"0015g{i:010d}" for i in range(n)]}).to_parquet(
        raw / "accounts.parquet", index=False)
    return AS_OF


class Receiver(BaseHTTPRequestHandler):
    received = 0

    def do_POST(self):  # noqa: N802 - the http.server API
        self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--moved", type=float, default=0.2)
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "propensity_bench" / "delivery")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    began = time.perf_counter()
    as_of = make_history(args.workdir, args.accounts, args.moved)
    print(f"history: 2 runs x {args.accounts:,} accounts in {time.perf_counter() - began:.1f} s")
    history = ScoreHistory(history_dir(args.workdir))

    began, cpu = time.perf_counter(), time.process_time()
    files = publish(ServingSettings(data_dir=args.workdir), history, as_of)
    total, cpu = time.perf_counter() - began, time.process_time() - cpu
    sizes = {p.name: p.stat().st_size for p in files.folder.iterdir()}
    print(f"files: {files.accounts:,} accounts, {files.changed:,} changed: publish {total:.2f} s "
          f"(CPU {cpu:.2f} s; writing the files {files.seconds_files:.2f} s); sizes "
          + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(sizes.items())))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["BENCH_HOOK_SECRET"] = "bench-secret"
    settings = ServingSettings(
        data_dir=args.workdir, delivery_files=False, webhook_batch_size=500,
        webhooks=[{"url": f"http://127.0.0.1:{server.server_address[1]}/hook",
                   "secret_env": "BENCH_HOOK_SECRET"}])
    began, cpu = time.perf_counter(), time.process_time()
    hooks = publish(settings, history, as_of)
    total, cpu = time.perf_counter() - began, time.process_time() - cpu
    server.shutdown()
    print(f"webhooks: {hooks.changed:,} changed accounts in {hooks.batches} batches of 500, "
          f"{hooks.delivered} delivered: publish {total:.2f} s (CPU {cpu:.2f} s, the receiver's "
          f"threads included; sending "
          f"{hooks.seconds_webhooks:.2f} s)")


if __name__ == "__main__":
    main()
