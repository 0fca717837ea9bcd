"""Validation of a Parquet file counts only the rows that break a rule, so that DuckDB skips the
row groups whose statistics rule a violation out: the report must not change for it. Oracle: the
same rows as CSV (no statistics; one query counting every rule over every row)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.sources import open_raw
from features.validation import validate
from tests.features.raw_fixture import valid_frames, write_raw

#: How a usage row is broken: a rule of the row scan, or the foreign key (the joined query).
BREAKS = ("ok", "negative", "after extraction", "orphan", "null user", "null type")


def _events(breaks: list[str]) -> pd.DataFrame:
    """One usage row per entry of ``breaks``, valid but for the way it names."""
    rows = []
    for i, how in enumerate(breaks):
        rows.append({
            "account_id": "A9" if how == "orphan" else f"A{1 + i % 3}",
            "user_id": None if how == "null user" else f"u{i}",
            "event_time": pd.Timestamp("2025-02-01 10:00" if how == "after extraction"
                                 else "2024-12-01 10:00")
            + pd.Timedelta(minutes=i),
            "event_type": None if how == "null type" else "login",
            "quantity": -1 if how == "negative" else i % 4,
        })
    return pd.DataFrame(rows).astype({"quantity": "int64"})


def _report(root: Path, events: pd.DataFrame, fmt: str, row_group: int = 0) -> list[str]:
    frames = valid_frames()
    frames["usage_events"] = events
    raw = write_raw(root / f"{fmt}{row_group}", frames, fmt)
    if row_group:  # the same rows in row groups of ``row_group`` rows, each with statistics
        pq.write_table(pa.Table.from_pandas(events, preserve_index=False),
                       raw / "usage_events.parquet", row_group_size=row_group)
    return [v.message() for v in validate(open_raw(raw))]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(breaks=st.lists(st.sampled_from(BREAKS), min_size=1, max_size=24),
       row_group=st.integers(1, 5))
def test_a_parquet_file_in_row_groups_reports_what_its_csv_does(tmp_path_factory, breaks,
                                                                row_group):
    root = tmp_path_factory.mktemp("rows")
    events = _events(breaks)
    expected = _report(root, events, "csv")
    assert _report(root, events, "parquet", row_group) == expected
    assert _report(root, events, "parquet") == expected


def test_each_rule_still_counts_its_rows_exactly(tmp_path):
    events = _events(["ok", "negative", "orphan", "ok", "negative", "after extraction",
                      "null user", "ok", "orphan", "orphan"])
    assert _report(tmp_path, events, "parquet", 2) == [
        "usage_events.account_id: orphan foreign key (rule: account_id in accounts.account_id): "
        "3 rows, e.g. (account_id, event_time)=(A9, 2024-12-01 10:02:00), "
        "(A9, 2024-12-01 10:08:00), (A9, 2024-12-01 10:09:00)",
        "usage_events.user_id: null value (rule: user_id is not null): 1 row, "
        "e.g. (account_id, event_time)=(A1, 2024-12-01 10:06:00)",
        "usage_events.event_time: after extraction time (rule: event_time < 2025-01-01 00:00:00):"
        " 1 row, e.g. (account_id, event_time)=(A3, 2025-02-01 10:05:00)",
        "usage_events.quantity: negative value (rule: quantity >= 0): 2 rows, "
        "e.g. (account_id, event_time)=(A2, 2024-12-01 10:01:00), (A2, 2024-12-01 10:04:00)",
    ]
