"""A small, valid raw table set, built by hand, to reuse in tests.

Three accounts (A2 is a subsidiary of A1), four contract terms (S4 is an annual term whose
scheduled end lies after the extraction on 2025-01-01, which is allowed), a few events, and one
or two rows in each optional table. Tests copy ``valid_frames()`` and break one thing.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd

from features.contract import MANIFEST_FILE


def _ts(*values: str | None) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values)), dtype="datetime64[ns]")


def _dates(*values: str | None) -> list[date | None]:
    """Python dates, so that Parquet stores a DATE column (and CSV ``YYYY-MM-DD``)."""
    return [None if v is None else date.fromisoformat(v) for v in values]


def valid_frames() -> dict[str, pd.DataFrame]:
    """Every contract table, valid, with its logical types as pandas dtypes."""
    accounts = pd.DataFrame({
        "account_id": ["A1", "A2", "A3"],
        "name": ["Acme", "Acme Sub", "Beta"],
        "parent_account_id": [None, "A1", None],
        "segment": ["enterprise", "mid-market", "SMB"],
        "industry": ["retail", "retail", "media"],
        "region": ["EMEA", "EMEA", "NA"],
        "owner": ["alice", "alice", "bob"],
        "created_at": _ts("2022-01-10 09:00:00", "2022-03-01 12:30:00", "2023-05-05 08:00:00"),
    })
    subscriptions = pd.DataFrame({
        "subscription_id": ["S1", "S2", "S3", "S4"],
        "account_id": ["A1", "A1", "A2", "A3"],
        "product": ["core", "core", "analytics", "core"],
        "plan": ["pro", "pro", "starter", "enterprise"],
        "seats": pd.Series([10, 12, 5, 50], dtype="int64"),
        "mrr": [1000.0, 1150.0, 200.0, 4500.0],
        "start_date": _dates("2023-01-01", "2024-01-01", "2023-06-01", "2024-07-01"),
        "end_date": _dates("2024-01-01", None, None, "2025-07-01"),
        "cancelled_at": _ts(None, None, "2024-10-15 10:00:00", None),
        "billing_period": ["annual", "monthly", "monthly", "annual"],
        "auto_renew": [True, True, False, True],
        "discount_pct": [0.0, 5.0, 0.0, 10.0],
    })
    usage_events = pd.DataFrame({
        "account_id": ["A1", "A1", "A2", "A3", "A3"],
        "user_id": ["u1", "u2", "u3", "u4", "u4"],
        "event_time": _ts(
            "2024-12-01 10:00:00", "2024-12-02 11:00:00", "2024-11-20 09:15:00",
            "2024-12-30 23:59:59", "2024-12-31 00:00:00",
        ),
        "event_type": ["login", "report", "login", "export", "login"],
        "quantity": pd.Series([1, 3, 1, 2, 1], dtype="int64"),
    })
    support_tickets = pd.DataFrame({
        "ticket_id": ["T1", "T2"],
        "account_id": ["A1", "A3"],
        "opened_at": _ts("2024-05-01 08:00:00", "2024-11-11 14:00:00"),
        "closed_at": _ts("2024-05-02 17:00:00", None),
        "priority": ["high", "normal"],
        "escalated": [True, False],
        "csat": [4.0, None],
    })
    nps_responses = pd.DataFrame({
        "account_id": ["A1", "A3"],
        "contact_id": ["C1", None],
        "responded_at": _ts("2024-06-01 12:00:00", "2024-09-15 16:00:00"),
        "score": pd.Series([9, 3], dtype="int64"),
    })
    contacts = pd.DataFrame({
        "contact_id": ["C1", "C2"],
        "account_id": ["A1", "A3"],
        "role": ["champion", "economic buyer"],
        "start_date": _dates("2022-01-10", "2023-05-05"),
        "end_date": _dates(None, "2024-08-31"),
    })
    activities = pd.DataFrame({
        "account_id": ["A1", "A3"],
        "occurred_at": _ts("2024-03-01 10:00:00", "2024-10-01 15:00:00"),
        "type": ["qbr", "call"],
    })
    health_scores = pd.DataFrame({
        "account_id": ["A1", "A3", "A3"],
        "scored_at": _ts("2024-11-30 18:00:00", "2024-11-30 18:00:00", "2024-12-31 18:00:00"),
        "score": [72.5, 31.0, 28.0],
        "label": ["green", "red", None],
    })
    return {
        "accounts": accounts,
        "subscriptions": subscriptions,
        "usage_events": usage_events,
        "support_tickets": support_tickets,
        "nps_responses": nps_responses,
        "contacts": contacts,
        "activities": activities,
        "health_scores": health_scores,
    }


def write_raw(
    dir: Path,
    frames: dict[str, pd.DataFrame],
    fmt: str = "parquet",
    extracted_at: str | None = "2025-01-01",
) -> Path:
    """Write ``frames`` as ``<table>.<fmt>`` files plus ``_manifest.json`` (none if
    ``extracted_at`` is None) into ``dir``; returns ``dir``."""
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        if fmt == "parquet":
            frame.to_parquet(dir / f"{name}.parquet", index=False)
        elif fmt == "csv":
            frame.to_csv(dir / f"{name}.csv", index=False)
        else:
            raise ValueError(f"unknown format {fmt!r} (parquet or csv)")
    if extracted_at is not None:
        manifest = {"extracted_at": extracted_at, "source": "test fixture"}
        (dir / MANIFEST_FILE).write_text(json.dumps(manifest))
    return dir
