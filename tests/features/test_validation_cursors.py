"""Validation of raw files on two cursors at once (``validation._on_cursors``): the same
violations in the same order as one table after another, a file that cannot be read reported
as the first in contract order whichever scan fails first, and every cursor reading text
stamps in UTC whatever the machine's time zone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from features import validation
from features.sources import RawFileError, open_raw
from tests.features.raw_fixture import valid_frames, write_raw
from tests.features.test_raw_file_errors import cut_short


def broken_book(tmp_path: Path, fmt: str) -> Path:
    frames = valid_frames()
    frames["usage_events"].loc[0, "quantity"] = -1
    frames["accounts"].loc[2, "segment"] = ""
    frames["subscriptions"].loc[3, "mrr"] = -5.0
    frames["subscriptions"].loc[0, "subscription_id"] = "S2"
    frames["contacts"].loc[0, "account_id"] = "A0"
    frames["support_tickets"].loc[0, "priority"] = None
    return write_raw(tmp_path / fmt, frames, fmt)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_two_cursors_find_what_one_connection_finds_in_the_same_order(tmp_path, fmt,
                                                                      monkeypatch):
    raw_dir = broken_book(tmp_path, fmt)
    monkeypatch.setattr(validation, "VALIDATION_WORKERS", 1)
    alone = validation.validate(open_raw(raw_dir))
    monkeypatch.setattr(validation, "VALIDATION_WORKERS", 2)
    threads: list[str] = []
    real = validation._checked
    monkeypatch.setattr(validation, "_checked", lambda raw, table, con: threads.append(
        __import__("threading").current_thread().name) or real(raw, table, con))
    together = validation.validate(open_raw(raw_dir))
    assert len(alone) >= 6 and together == alone
    assert {t.split("_")[0] for t in threads} == {"validation"}  # on the workers


def test_the_first_unreadable_file_in_contract_order_is_the_one_reported(tmp_path):
    raw_dir = write_raw(tmp_path / "raw", valid_frames())
    # usage_events is the largest file, so it is checked first; subscriptions comes first
    # in the contract, so it is the one reported
    for table in ("subscriptions", "usage_events"):
        cut_short(raw_dir / f"{table}.parquet")
    with pytest.raises(RawFileError) as error:
        validation.validate(open_raw(raw_dir))
    assert error.value.path == raw_dir / "subscriptions.parquet"


def test_cursors_read_text_stamps_in_utc_whatever_the_machine_time_zone(tmp_path):
    """A stamp written with an offset is the same instant on the connection and on its
    cursors (the grid's and validation's threads), in a process whose local zone is not UTC."""
    script = """
import sys
from features.sources import connect
con = connect()
query = "SELECT CAST(CAST('2024-01-01 00:00:00+00' AS TIMESTAMPTZ) AS TIMESTAMP)"
print(con.execute(query).fetchone()[0], con.cursor().execute(query).fetchone()[0])
"""
    env = {**os.environ, "TZ": "America/New_York"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, cwd=Path(__file__).parents[2], check=True).stdout.split()
    assert out == ["2024-01-01", "00:00:00", "2024-01-01", "00:00:00"]
