"""Feature snapshots on Apache Spark: the same catalogue, for data that outgrows one machine.

The snapshot query is the DuckDB build's own (:func:`features.build.snapshot_sql`), carried to
Spark SQL by :mod:`features.spark.sql`; the raw tables are Parquet files or folders under any
Hadoop-compatible URI (``/local/path``, ``file:``, ``s3a://``, ``hdfs://``), exposed as typed
temporary views named like the contract tables, exactly as the DuckDB views are.

Output: on the local filesystem each snapshot is collected as Arrow, cast to the DuckDB build's
types and written by :class:`features.store.FeatureStore` (one ``part-0.parquet``, atomic swap,
catalogue version in the footer). On a remote URI Spark writes the partition folder
``as_of=YYYY-MM-DD/`` itself (``part-*.parquet`` files, replaced as a whole by Spark's commit
protocol) plus a ``_catalogue_version`` file beside them. pyspark is imported inside functions:
it is an optional extra.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from features.build import (
    SnapshotError,
    check_as_of,
    feature_groups,
    snapshot_sql,
)
from features.catalogue import ACCOUNT_ID, AS_OF, Cutoff, FeatureGroup, FeatureSpec, all_features
from features.contract import MANIFEST_FILE, TABLES, Table
from features.sources import ContractError
from features.spark.sql import to_spark_sql
from features.spark.uris import (
    is_remote,
    join_uri,
    local_path,
    read_text,
    uri_exists,
    write_text,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from features.event_types import RunSql

log = logging.getLogger(__name__)

SPARK_TYPES: dict[str, str] = {
    "string": "STRING",
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP_NTZ",  # DuckDB's TIMESTAMP is naive; so is the feature SQL's
}
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(), "int64": pa.int64(), "float64": pa.float64(),
}
CATALOGUE_VERSION_FILE = "_catalogue_version"


# --- raw tables -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SparkRaw:
    """The contract tables registered as typed temporary views on one Spark session."""

    spark: SparkSession
    uri: str
    present: frozenset[str]
    extracted_at: datetime | None = None


def read_manifest(spark: SparkSession, raw_uri: str) -> datetime | None:
    uri = join_uri(raw_uri, MANIFEST_FILE)
    if not uri_exists(spark, uri):
        return None
    text = read_text(spark, uri)
    try:
        return pd.Timestamp(json.loads(text)["extracted_at"]).tz_localize(None).to_pydatetime()
    except (KeyError, ValueError, TypeError) as exc:
        raise ContractError(
            [f"{MANIFEST_FILE}: extracted_at missing or not a timestamp ({exc})"]
        ) from exc


def typed_frame(frame: DataFrame, table: Table) -> DataFrame:
    """The contract columns cast to their logical types (an absent optional one as nulls),
    extra columns kept as they are."""
    from pyspark.sql import functions as F

    contract = set(table.column_names)
    typed = [(F.col(f"`{c.name}`") if c.name in frame.columns else F.lit(None))
             .cast(SPARK_TYPES[c.type]).alias(c.name) for c in table.columns]
    return frame.select(*typed, *[F.col(f"`{c}`") for c in frame.columns if c not in contract])


def empty_frame(spark: SparkSession, table: Table) -> DataFrame:
    ddl = ", ".join(f"`{c.name}` {SPARK_TYPES[c.type]}" for c in table.columns)
    return spark.createDataFrame([], ddl)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def register_raw(spark: SparkSession, raw_uri: str) -> SparkRaw:
    """Register ``<raw_uri>/<table>.parquet`` (a file or a folder of parts) as typed views.

    Checks the shape only (required tables and contract columns present); the value rules are
    ``propensity data validate``'s, run where the export is produced or where it fits.
    """
    problems: list[str] = []
    present = set()
    for table in TABLES.values():
        uri = join_uri(raw_uri, f"{table.name}.parquet")
        if not uri_exists(spark, uri):
            if uri_exists(spark, join_uri(raw_uri, f"{table.name}.csv")):
                problems.append(f"{table.name}: the Spark engine reads Parquet only; "
                                f"convert {table.name}.csv to {table.name}.parquet")
            elif not table.optional:
                problems.append(f"{table.name}: missing required table (no {uri})")
            empty_frame(spark, table).createOrReplaceTempView(table.name)
            continue
        try:
            frame = spark.read.parquet(uri)
        except Exception as exc:  # Spark's analysis errors: unreadable file, nanosecond times
            problems.append(f"{table.name}: Spark cannot read {uri}: {_first_line(exc)}")
            continue
        missing = [c for c in table.required_columns if c not in frame.columns]
        problems += [f"{table.name}.{c}: missing column" for c in missing]
        if not missing:
            typed_frame(frame, table).createOrReplaceTempView(table.name)
            present.add(table.name)
    if problems:
        raise ContractError(problems)
    return SparkRaw(spark, raw_uri, frozenset(present), read_manifest(spark, raw_uri))


# --- snapshots ------------------------------------------------------------------------------
def check_groups(raw: SparkRaw, groups: list[FeatureGroup], as_of: date) -> None:
    """Refuse a group whose Spark query returns other columns than it declares (analysis only)."""
    s = Cutoff(as_of)
    for g in groups:
        if g.cte is None or not all(src in raw.present for src in g.source.split("+")):
            continue
        got = raw.spark.sql(to_spark_sql(g.cte(s))).columns
        want = [ACCOUNT_ID, *g.names]
        if sorted(got) != sorted(want):
            raise SnapshotError(
                f"feature group {g.name!r} returns {sorted(set(got) - set(want))} not declared "
                f"and lacks {sorted(set(want) - set(got))} on Spark"
            )


def snapshot_frame(raw: SparkRaw, as_of: date, groups: list[FeatureGroup]) -> DataFrame:
    """The snapshot as a (lazy) Spark DataFrame, unordered."""
    return raw.spark.sql(to_spark_sql(snapshot_sql(groups, as_of, raw.present)))


def arrow_schema(groups: list[FeatureGroup]) -> pa.Schema:
    """The DuckDB build's column types: what every snapshot reader expects."""
    fields = [pa.field(ACCOUNT_ID, pa.string()), pa.field(AS_OF, pa.date32())]
    fields += [pa.field(f.name, ARROW_TYPES[f.dtype]) for f in all_features(groups)]
    return pa.schema(fields)


def to_local_table(frame: DataFrame, schema: pa.Schema) -> pa.Table:
    """Collect as Arrow, sorted by account and cast to ``schema`` (no Spark metadata kept)."""
    table = frame.toArrow().select(schema.names)
    table = table.replace_schema_metadata(None).cast(schema)
    return table.sort_by(ACCOUNT_ID)


def build_snapshot(
    raw: SparkRaw, as_of: date, spec: FeatureSpec | None = None, checked: bool = False
) -> pa.Table:
    """One snapshot built on Spark and collected (for the local store and for tests)."""
    check_as_of(raw.extracted_at, as_of)
    groups = feature_groups(spec)
    if not checked:
        check_groups(raw, groups, as_of)
    return to_local_table(snapshot_frame(raw, as_of, groups), arrow_schema(groups))


def write_remote(
    raw: SparkRaw, as_of: date, out_uri: str, version: str, spec: FeatureSpec | None = None
) -> tuple[str, int]:
    """Spark writes ``<out_uri>/as_of=YYYY-MM-DD/`` itself; returns (folder, accounts)."""
    from pyspark.sql import functions as F

    check_as_of(raw.extracted_at, as_of)
    groups = feature_groups(spec)
    schema = arrow_schema(groups)
    frame = snapshot_frame(raw, as_of, groups).select(
        *[F.col(f"`{name}`") for name in schema.names]
    ).cache()
    try:
        target = join_uri(out_uri, f"as_of={as_of:%Y-%m-%d}")
        frame.sortWithinPartitions(ACCOUNT_ID).write.mode("overwrite").parquet(target)
        write_text(raw.spark, join_uri(target, CATALOGUE_VERSION_FILE), version)
        return target, frame.count()
    finally:
        frame.unpersist()


def build_and_store(
    spark: SparkSession,
    choose_spec: Callable[[RunSql], FeatureSpec],
    dates: list[date],
    raw_uri: str,
    out_uri: str,
) -> tuple[list[tuple[date, int, int, float]], str, str]:
    """Build the snapshots of ``dates`` from the raw tables at ``raw_uri`` and store them
    under ``out_uri`` on Spark. ``choose_spec`` picks the catalogue's shape from the raw data
    (the data's own event types), given a way to run a query on them.

    Returns ``[(as_of, accounts, features, seconds)]``, the catalogue version and where the
    snapshots went. Every date is checked before anything is written.
    """
    import time
    from pathlib import Path

    from features.catalogue import catalogue_version
    from features.store import FeatureStore

    raw = register_raw(spark, raw_uri)
    for as_of in dates:
        check_as_of(raw.extracted_at, as_of)
    spec = choose_spec(lambda query: [tuple(r) for r in raw.spark.sql(query).collect()])
    groups = feature_groups(spec)
    version = catalogue_version(groups)
    out = out_uri
    n_features = len(all_features(groups))
    built = []
    if dates:
        check_groups(raw, groups, dates[0])
    for as_of in dates:
        began = time.perf_counter()
        if is_remote(out):
            _, rows = write_remote(raw, as_of, out, version, spec)
        else:
            table = build_snapshot(raw, as_of, spec, checked=True)
            FeatureStore(Path(local_path(out))).write(as_of, table, version, spec.event_types)
            rows = table.num_rows
        built.append((as_of, rows, n_features, time.perf_counter() - began))
    return built, version, out
