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


def test_a_spark_runs_plain_folder_of_parts_reads_like_a_published_link(tmp_path):
    """`propensity run --engine spark` writes as_of=<date>/ with Spark's part files."""
    history = ScoreHistory(tmp_path)
    _publish(tmp_path, date(2024, 3, 1), {"A": 0.2}, "1")
    folder = tmp_path / "as_of=2024-03-08"
    folder.mkdir()
    for n, (account, p) in enumerate([("A", 0.3), ("B", 0.5)]):
        pq.write_table(pa.table({"account_id": [account], "as_of": [date(2024, 3, 8)],
                                 "churn_probability": [p]}),
                       folder / f"part-0000{n}-abc.snappy.parquet")
    (folder / "_scoring.json").write_text(json.dumps(
        {"catalogue_version": "cat1", "models": {"churn": {"uri": "u", "version": 2}}}))
    assert history.dates() == [date(2024, 3, 1), date(2024, 3, 8)]
    assert history.read(date(2024, 3, 8))["account_id"].tolist() == ["A", "B"]
    rows = history.account("A")
    assert rows["churn_probability"].tolist() == [0.2, 0.3]
    assert rows["model_versions"].tolist() == [{"churn": "1"}, {"churn": "2"}]
    assert rows["catalogue_version"].tolist() == [None, "cat1"]


def test_prune_removes_old_partitions_link_and_files(tmp_path):
    history = ScoreHistory(tmp_path)
    for day in (date(2024, 3, 1), date(2024, 3, 8), date(2024, 3, 15)):
        _publish(tmp_path, day, {"A": 0.1}, "1")
    plain = tmp_path / "as_of=2024-02-23"
    plain.mkdir()
    pq.write_table(pa.table({"account_id": ["A"], "as_of": [date(2024, 2, 23)],
                             "churn_probability": [0.4]}), plain / "part-00000-x.parquet")
    assert history.prune(date(2024, 3, 8)) == [date(2024, 2, 23), date(2024, 3, 1)]
    assert history.dates() == [date(2024, 3, 8), date(2024, 3, 15)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".versions", "as_of=2024-03-08", "as_of=2024-03-15"]
    assert len([p for p in (tmp_path / ".versions").iterdir() if "@" in p.name]) == 2
    assert history.account("A")["churn_probability"].tolist() == [0.1, 0.1]
