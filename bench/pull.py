"""Benchmark: ``data pull`` from PostgreSQL, a usage table of 10 M rows.

Starts a throwaway PostgreSQL server (as the tests do: tests/postgres_server.py; needs Debian's
``postgresql`` binaries), fills ``usage_events`` with ``generate_series`` in SQL (plus a few
accounts and terms, the other required tables), then runs ``propensity data pull`` in its own
process and prints the wall time, rows per second and that process's peak memory (max RSS), as
one JSON line.

    python -m bench.pull [--rows 10000000] [--accounts 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETUP = """
CREATE TABLE accounts AS
SELECT 'A' || i AS account_id, 'Account ' || i AS name, NULL::text AS parent_account_id,
       (ARRAY['SMB', 'mid-market', 'enterprise'])[1 + i % 3] AS segment, 'software' AS industry,
       'EMEA' AS region, 'owner' || i % 20 AS owner, timestamp '2023-01-01' AS created_at
FROM generate_series(1, {accounts}) AS i;
CREATE TABLE subscriptions AS
SELECT 'S' || i AS subscription_id, 'A' || i AS account_id, 'core' AS product, 'pro' AS plan,
       10::bigint AS seats, 1000.0::float8 AS mrr, date '2023-01-01' AS start_date,
       date '2026-01-01' AS end_date, NULL::timestamp AS cancelled_at, 'annual' AS billing_period,
       true AS auto_renew, 0.0::float8 AS discount_pct
FROM generate_series(1, {accounts}) AS i;
CREATE TABLE usage_events AS
SELECT 'A' || (1 + i % {accounts}) AS account_id, 'U' || (i % ({accounts} * 20)) AS user_id,
       timestamp '2023-01-01' + (i % 63072000) * interval '1 second' AS event_time,
       (ARRAY['login', 'view_report', 'export', 'share', 'api_call'])[1 + i % 5] AS event_type,
       (1 + i % 7)::bigint AS quantity
FROM generate_series(1, {rows}) AS i;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--accounts", type=int, default=5_000)
    args = parser.parse_args()

    from tests.postgres_server import PostgresServer, free_port, server_binaries

    binaries = server_binaries()
    if binaries is None:
        sys.exit("needs PostgreSQL's server binaries: apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="propensity-bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "nobody")
    server = PostgresServer(binaries, root, free_port())
    server.start()
    work = Path(tempfile.mkdtemp(prefix="propensity-bench-pull-"))
    try:
        import adbc_driver_postgresql.dbapi as pg

        uri = server.create_database("bench")
        began = time.perf_counter()
        with pg.connect(uri, autocommit=True) as conn, conn.cursor() as cursor:
            for statement in SETUP.format(rows=args.rows, accounts=args.accounts).split(";"):
                if statement.strip():
                    cursor.execute(statement)
        load_s = time.perf_counter() - began
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", "from propensity_cli import app; app(prog_name='propensity')",
             "data", "pull", "--source", uri,
             "--data-dir", str(work)],
            capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"},
        )
        pull_s = time.perf_counter() - began
        if done.returncode:
            sys.exit(done.stderr or done.stdout)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        parquet = work / "raw" / "usage_events.parquet"
        total = args.rows + 2 * args.accounts
        print(json.dumps({
            "usage_rows": args.rows, "rows_total": total, "load_s": round(load_s, 1),
            "pull_s": round(pull_s, 1), "rows_per_s": round(total / pull_s),
            "peak_rss_mb": round(peak_mb),
            "usage_parquet_mb": round(parquet.stat().st_size / 2**20),
        }))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
