"""Spark builds the same snapshots as DuckDB: same catalogue, same types, same values."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from features.build import SnapshotError, feature_groups, snapshot_sql
from features.build import build_snapshot as duckdb_snapshot
from features.catalogue import DEFAULT_EVENT_TYPES, catalogue_version
from features.contract import MANIFEST_FILE
from features.sources import ContractError, connect
from features.spark.sql import to_spark_sql
from features.store import FeatureStore
from features.validation import load_tables
from propensity_cli import app
from simulator.generator import generate_into
from tests.features.feature_fixture import AS_OF, frames
from tests.spark_session import start_spark

pytestmark = pytest.mark.spark
GRID = (date(2024, 9, 1), date(2025, 2, 1))


@pytest.fixture(scope="module")
def spark():
    return start_spark()


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A generated book: 250 accounts over 14 months (raw Parquet + manifest)."""
    data = tmp_path_factory.mktemp("spark-book")
    generate_into(data, 250, 14, seed=11, start=date(2024, 1, 1))
    return data


def write_raw(tables: dict[str, pd.DataFrame], raw, extracted_at: str = "2025-08-01") -> None:
    """Parquet files as an export would give them (microsecond timestamps)."""
    raw.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_parquet(raw / f"{name}.parquet", index=False, coerce_timestamps="us",
                         allow_truncated_timestamps=True)
    (raw / MANIFEST_FILE).write_text(json.dumps({"extracted_at": extracted_at}))


def assert_same_snapshot(spark_frame: pd.DataFrame, duck_frame: pd.DataFrame) -> None:
    """Exact for ids, dates, counts and strings; floats within 1e-9 relative; same nulls."""
    assert list(spark_frame.columns) == list(duck_frame.columns)
    assert dict(spark_frame.dtypes) == dict(duck_frame.dtypes)
    assert len(spark_frame) == len(duck_frame) > 0
    for column in duck_frame.columns:
        left, right = spark_frame[column], duck_frame[column]
        assert left.isna().equals(right.isna()), f"{column}: null patterns differ"
        known = right.notna()
        if right.dtype.kind == "f":
            np.testing.assert_allclose(left[known], right[known], rtol=1e-9, atol=0,
                                       err_msg=column)
        else:
            assert left[known].tolist() == right[known].tolist(), column


# --- the dialect --------------------------------------------------------------------------
EXPRESSIONS = {  # DuckDB meaning that a plain SQLGlot translation would change on Spark
    "months_across_a_short_month": "date_diff('month', DATE '2024-01-31', DATE '2024-02-29')",
    "months_whole_year": "date_diff('month', DATE '2024-03-15', DATE '2025-03-01')",
    "days_from_timestamps": "date_diff('day', CAST(TIMESTAMP '2024-01-01 23:59:00' AS DATE), "
                            "DATE '2024-01-02')",
    "seconds_across_a_boundary": "date_diff('second', TIMESTAMP '2024-01-01 00:00:00.900', "
                                 "TIMESTAMP '2024-01-01 00:00:01.100')",
    "division_by_a_decimal_literal": "CAST(1 AS BIGINT) / 3600.0",
    "decimal_literal_product": "2.0 * CAST(1 AS BIGINT) / CAST(7 AS BIGINT)",
}


def test_translated_expressions_give_duckdbs_values(spark):
    query = "SELECT " + ", ".join(f"{sql} AS {name}" for name, sql in EXPRESSIONS.items())
    duck = connect().execute(query).fetchone()
    got = spark.sql(to_spark_sql(query)).first()
    assert duck[:4] == (1, 12, 1, 1)  # boundaries crossed (whole units elapsed: 0, 11, 1, 0)
    assert tuple(got)[:4] == duck[:4]
    assert got[4] == pytest.approx(duck[4], rel=1e-15)
    assert got[5] == pytest.approx(duck[5], rel=1e-15)


def test_the_top_level_order_is_left_to_the_caller():
    sql = snapshot_sql(feature_groups(), AS_OF, frozenset({"accounts", "subscriptions"}))
    assert "ORDER BY account_id" in sql
    assert "ORDER BY account_id" not in to_spark_sql(sql)
    assert to_spark_sql(sql, keep_order=True).rstrip().endswith("account_id NULLS LAST")


def test_only_hadoop_uris_are_written_by_spark_itself():
    from features.spark.uris import is_remote, local_path

    assert [is_remote(u) for u in ("/data/features", "features", "file:///data/f",
                                   "file:/data/f", "s3a://bucket/f", "hdfs://nn:8020/f")] \
        == [False, False, False, False, True, True]
    assert local_path("file:///data/f") == "/data/f" and local_path("file:/data/f") == "/data/f"


# --- snapshots ----------------------------------------------------------------------------
def test_hand_made_edge_cases_match_duckdb(spark, tmp_path):
    """Renewal on as_of, notice given, reactivation, events at as_of, hierarchy, ..."""
    from features.spark.build import build_snapshot, register_raw

    write_raw(frames(), tmp_path / "raw")
    raw = register_raw(spark, str(tmp_path / "raw"))
    on_spark = build_snapshot(raw, AS_OF).to_pandas()
    on_duckdb = duckdb_snapshot(load_tables(tmp_path / "raw"), AS_OF).to_pandas()
    assert on_spark["account_id"].tolist() == ["A1", "A2", "A3", "A4"]
    assert_same_snapshot(on_spark, on_duckdb)


def test_generated_grid_matches_duckdb_through_the_store(spark, generated, tmp_path):
    """Both engines write the grid; the stored snapshots read back identical."""
    from features.event_types import chosen_spec
    from features.spark.build import build_and_store
    from tests.spark_session import spark_test_settings

    settings = spark_test_settings(data_dir=generated)
    built, version, out = build_and_store(spark, lambda run: chosen_spec(settings, run), list(GRID),
                                          str(settings.raw_dir), str(tmp_path / "spark"))
    assert [b[0] for b in built] == list(GRID)
    # By default the data's event types (the generator emits the seven defaults), by name.
    chosen = settings.feature_spec(tuple(sorted(DEFAULT_EVENT_TYPES)))
    assert version == catalogue_version(feature_groups(chosen))
    tables = load_tables(generated / "raw")
    duck_store, spark_store = FeatureStore(tmp_path / "duckdb"), FeatureStore(tmp_path / "spark")
    for as_of in GRID:
        duck_store.write(as_of, duckdb_snapshot(tables, as_of, chosen), version)
    assert spark_store.dates() == list(GRID)
    for as_of in GRID:
        assert spark_store.catalogue_version(as_of) == version
        assert_same_snapshot(spark_store.read(as_of), duck_store.read(as_of))
        schema = pq.read_schema(spark_store.path(as_of) / "part-0.parquet")
        assert set(schema.metadata) == {b"propensity.catalogue_version",
                                        b"propensity.event_types"}


def test_spark_writes_the_partition_folder_itself_for_remote_stores(spark, generated, tmp_path):
    """The layout used for s3a:// or hdfs:// (exercised on a local path): parts + version."""
    from features.spark.build import CATALOGUE_VERSION_FILE, register_raw, write_remote

    raw = register_raw(spark, str(generated / "raw"))
    folder, rows = write_remote(raw, GRID[0], str(tmp_path / "remote"), "v-test")
    assert folder == f"{tmp_path / 'remote'}/as_of={GRID[0]}"
    assert (tmp_path / "remote" / f"as_of={GRID[0]}" / CATALOGUE_VERSION_FILE).read_text() \
        == "v-test"
    parts = sorted((tmp_path / "remote" / f"as_of={GRID[0]}").glob("part-*.parquet"))
    written = pq.ParquetDataset(parts, partitioning=None).read().to_pandas()
    written = written.sort_values("account_id", ignore_index=True)
    expected = duckdb_snapshot(load_tables(generated / "raw"), GRID[0]).to_pandas()
    assert rows == len(expected)
    assert_same_snapshot(written, expected)


# --- the command and bad input --------------------------------------------------------------
def run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture()
def spark_env(monkeypatch):
    monkeypatch.setenv("PROPENSITY_SPARK_MASTER", "local[2]")


def test_the_command_builds_with_spark(spark, spark_env, generated, tmp_path):
    out = tmp_path / "features"
    result = run("features", "build", "--engine", "spark", "--as-of", "2025-01-01",
                 "--out", str(out), "--data-dir", str(generated))
    assert result.exit_code == 0, result.output
    assert FeatureStore(out).dates() == [date(2025, 1, 1)]
    assert not (generated / "features").exists()  # --out, not <data-dir>/features


def test_after_the_extraction_time_nothing_is_written(spark, spark_env, generated, tmp_path):
    out = tmp_path / "features"
    result = run("features", "build", "--engine", "spark", "--from", "2025-01-01",
                 "--to", "2025-04-01", "--out", str(out), "--data-dir", str(generated))
    assert result.exit_code == 1
    assert "as_of 2025-04-01 is after the data's extraction time 2025-03-01" in result.output
    assert not out.exists()


def test_broken_raw_tables_are_named(spark, tmp_path):
    from features.spark.build import register_raw

    tables = frames()
    tables["accounts"] = tables["accounts"].drop(columns=["segment"])
    tables["support_tickets"].to_csv(tmp_path / "support_tickets.csv", index=False)
    del tables["support_tickets"], tables["subscriptions"]
    write_raw(tables, tmp_path)
    with pytest.raises(ContractError) as caught:
        register_raw(spark, str(tmp_path))
    assert caught.value.problems == [
        "accounts.segment: missing column",
        f"subscriptions: missing required table (no {tmp_path}/subscriptions.parquet)",
        "support_tickets: the Spark engine reads Parquet only; convert support_tickets.csv "
        "to support_tickets.parquet",
    ]


def test_nanosecond_timestamps_are_reported_not_crashed_on(spark, tmp_path):
    from features.spark.build import register_raw

    write_raw(frames(), tmp_path)
    frames()["usage_events"].to_parquet(tmp_path / "usage_events.parquet", index=False)
    with pytest.raises(ContractError, match=r"^usage_events: Spark cannot read .*usage_events"):
        register_raw(spark, str(tmp_path))


def test_an_as_of_past_the_extraction_is_refused(spark, tmp_path):
    from features.spark.build import build_snapshot, register_raw

    write_raw(frames(), tmp_path, extracted_at="2025-06-01T00:00:00")
    raw = register_raw(spark, str(tmp_path))
    with pytest.raises(SnapshotError, match="after the data's extraction time 2025-06-01"):
        build_snapshot(raw, AS_OF)


def test_an_unknown_engine_is_refused():
    result = run("features", "build", "--engine", "flink", "--as-of", "2025-01-01")
    assert result.exit_code == 2
    assert "--engine 'flink': choose duckdb or spark" in result.output
