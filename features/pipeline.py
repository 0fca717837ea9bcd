"""The features pipeline as plain functions: validate the raw tables, build and store snapshots,
compute and store KPIs.

The commands, the demo and the benchmarks call these. They raise on bad input
(``ContractError``, ``SnapshotError``, ``ValueError``) and print nothing, so each caller reports
in its own way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from features.settings import Settings
from features.sources import RawTables


class BuiltSnapshot(NamedTuple):
    """One stored snapshot: its date, rows (accounts), feature columns and build time."""

    as_of: date
    accounts: int
    features: int
    seconds: float


def open_validated(settings: Settings) -> RawTables:
    """The raw tables of ``settings.raw_dir``, contract-checked (raises ``ContractError``)."""
    from features.sources import connect
    from features.validation import load_tables

    con = connect(settings.duckdb_threads, settings.duckdb_memory_limit)
    return load_tables(settings.raw_dir, con=con)


def table_rows(tables: RawTables) -> dict[str, int | None]:
    """Rows per contract table; None for an optional table the export does not have."""
    from features.contract import TABLES

    return {
        name: tables.con.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]
        if tables.has(name) else None
        for name in TABLES
    }


def build_snapshots(
    settings: Settings, dates: list[date],
    on_built: Callable[[BuiltSnapshot], None] | None = None,
    tables: RawTables | None = None,
) -> tuple[list[BuiltSnapshot], str]:
    """Validate the raw data (unless ``tables`` are validated already) and every date first,
    then build and store each snapshot; returns what was built and the catalogue version.
    ``on_built`` hears of each snapshot."""
    from features.build import SnapshotError, build_grid, check_as_of, feature_groups
    from features.catalogue import catalogue_version
    from features.event_types import chosen_spec
    from features.store import FeatureStore, SnapshotWriteFailed

    tables = tables or open_validated(settings)
    for day in dates:
        check_as_of(tables.extracted_at, day)
    spec = chosen_spec(settings, lambda query: tables.con.execute(query).fetchall())
    version = catalogue_version(feature_groups(spec))
    store = FeatureStore(settings.features_dir)
    built = []
    began = time.perf_counter()
    try:
        for day, snapshot in store.write_each(
                build_grid(tables, dates, spec, settings.build_workers), version,
                spec.event_types):
            built.append(BuiltSnapshot(day, snapshot.num_rows, snapshot.num_columns - 2,
                                       time.perf_counter() - began))
            began = time.perf_counter()
            if on_built:
                on_built(built[-1])
    except SnapshotWriteFailed as exc:  # a full disk, a read-only folder: the old stays
        raise SnapshotError(
            f"cannot write the feature snapshot as_of={exc.as_of} to {exc.path}: "
            f"{exc.error.strerror or exc.error}; the previous version (if any) is unchanged"
        ) from exc.error
    return built, version


def build_snapshots_spark(
    settings: Settings, dates: list[date], raw: str | None = None, out_uri: str | None = None
) -> tuple[list[BuiltSnapshot], str, str]:
    """The Spark build (``features.spark``): built snapshots, catalogue version, snapshot root.

    The session is left running: a command's process ends right after, and a caller that
    already had a session (tests, notebooks) keeps it. Raises ``RuntimeError`` without Spark.
    """
    from features.event_types import chosen_spec
    from features.spark.build import build_and_store
    from features.spark.session import spark_session

    spark = spark_session(settings.spark_master, settings.spark_conf)
    built, version, target = build_and_store(spark, lambda run: chosen_spec(settings, run), dates,
                                             raw or str(settings.raw_dir),
                                             out_uri or str(settings.features_dir))
    return [BuiltSnapshot(*row) for row in built], version, target


def kpi_groupings(by: str) -> list[str]:
    """The groupings of a comma list such as ``month,segment`` (raises ``ValueError``)."""
    from features.kpis import KPI_GROUPINGS

    groups = [g.strip() for g in by.split(",") if g.strip()]
    unknown = sorted(set(groups) - set(KPI_GROUPINGS))
    if unknown:
        raise ValueError(f"unknown grouping {', '.join(unknown)} "
                         f"(choose from {', '.join(KPI_GROUPINGS)})")
    return groups


def compute_and_store_kpis(settings: Settings, groups: list[str]) -> tuple[pd.DataFrame, Path]:
    """KPIs for the groupings, written to <data-dir>/kpis/; returns (frame, path)."""
    from features.kpis import compute_kpis
    from features.store import write_parquet_atomic

    tables = open_validated(settings)
    frame = compute_kpis(tables, by=groups, gross_margin=settings.gross_margin)
    name = "kpis_by_" + "_".join(sorted(set(groups) | {"month"})) + ".parquet"
    return frame, write_parquet_atomic(frame, settings.kpis_dir / name)
