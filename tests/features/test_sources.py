"""Reading raw files: typed views, time zones."""

from __future__ import annotations

import pandas as pd

from features.validation import load_tables
from tests.features.raw_fixture import valid_frames, write_raw


def test_csv_timestamps_with_an_offset_are_read_as_utc(tmp_path):
    write_raw(tmp_path, valid_frames(), fmt="csv")
    path = tmp_path / "activities.csv"
    frame = pd.read_csv(path)
    frame.loc[0, "occurred_at"] = "2024-06-01 10:00:00+02:00"
    frame.to_csv(path, index=False)
    tables = load_tables(tmp_path)
    first = tables.con.execute("SELECT MIN(occurred_at) FROM activities "
                               "WHERE occurred_at::DATE = DATE '2024-06-01'").fetchone()[0]
    assert first == pd.Timestamp("2024-06-01 08:00:00")
