"""The score history reader: dates, one run, one account across runs with its model versions."""

from __future__ import annotations

import json
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq

from serving.batch import write_local_partition
from serving.history import ScoreHistory


def _publish(root, as_of: date, rows: dict[str, float], version: str) -> None:
    table = pa.table({"account_id": list(rows), "as_of": [as_of] * len(rows),
                      "churn_probability": list(rows.values())})
    note = json.dumps({"as_of": str(as_of), "models": {"churn": {"uri": "u", "version": version}}})
    write_local_partition(root, as_of, lambda d: pq.write_table(table, d / "part-0.parquet"), note)


def test_account_history_is_oldest_first_with_each_runs_model_version(tmp_path):
    history = ScoreHistory(tmp_path)
    _publish(tmp_path, date(2024, 3, 8), {"A": 0.3, "B": 0.1}, "2")
    _publish(tmp_path, date(2024, 3, 1), {"A": 0.2, "B": 0.4}, "1")
    assert history.dates() == [date(2024, 3, 1), date(2024, 3, 8)]
    rows = history.account("A")
    assert rows["churn_probability"].tolist() == [0.2, 0.3]
    assert rows["model_versions"].tolist() == [{"churn": "1"}, {"churn": "2"}]
    assert history.account("A", start=date(2024, 3, 2))["churn_probability"].tolist() == [0.3]
    assert history.account("nobody").empty
    assert history.read(date(2024, 3, 8))["account_id"].tolist() == ["A", "B"]


def test_an_empty_history_has_no_dates_and_no_rows(tmp_path):
    history = ScoreHistory(tmp_path / "absent")
    assert history.dates() == []
    assert history.account("A").empty
