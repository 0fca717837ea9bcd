"""`propensity score`: batch scoring of every account to Parquet (serving.batch)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from features.cli_options import DataDir, console, date_option, fail, out, settings_of


def score_cmd(
    as_of: Annotated[date, date_option("--as-of", help="Snapshot date to score.")],
    out_dir: Annotated[str, typer.Option(
        "--out", help="Output root; writes <out>/as_of=YYYY-MM-DD/ (Spark: any Hadoop URI).")],
    engine: Annotated[str, typer.Option(
        help="duckdb (one machine) or spark (settings.spark_master; needs the spark extra).")
    ] = "duckdb",
    reasons: Annotated[int, typer.Option(
        help="Reasons per model and account: the k strongest raising and the k strongest "
        "lowering the probability (0: none, faster).", min=0, max=20)] = 3,
    raw: Annotated[str | None, typer.Option(
        "--raw", help="Spark only: folder of the raw Parquet tables (default <data-dir>/raw).")
    ] = None,
    features: Annotated[str | None, typer.Option(
        "--features", help="Spark only: snapshot root (default <data-dir>/features).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Score every account of the snapshot at --as-of with the champion models: probabilities,
    risk tier, expected values, next best product, play and top reasons, as Parquet for a CRM
    bulk import."""
    import logging

    from serving.batch import ENGINES, BatchError
    from serving.settings import ServingSettings

    settings = settings_of(ServingSettings, data_dir)
    if engine not in ENGINES:
        fail(f"--engine {engine!r}: choose duckdb or spark", 2)
    if engine == "duckdb" and (raw or features):
        fail("--raw and --features go with --engine spark (DuckDB reads <data-dir>)", 2)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:
        with console.status(f"scoring the accounts of {as_of} on {engine}"):
            result = _run(settings, engine, as_of, out_dir, reasons, raw, features)
    except BatchError as exc:
        fail(str(exc))
    versions = ", ".join(f"{t} v{v}" for t, v in result.versions.items())
    out.print(f"scored {result.accounts:,} accounts of {result.as_of} with {versions} in "
              f"{result.seconds:.1f} s -> {result.path}")


def _run(settings, engine: str, day: date, out_dir: str, reasons: int, raw, features):
    """The engine's run; bad input (contract, snapshot date, no pyspark) as a BatchError."""
    from features.build import SnapshotError
    from features.sources import ContractError
    from serving.batch import BatchError, score_duckdb, score_spark

    try:
        if engine == "duckdb":
            return score_duckdb(settings, day, out_dir, reasons)
        from features.spark.session import spark_session

        try:
            spark = spark_session(settings.spark_master, settings.spark_conf)
        except RuntimeError as exc:  # the extra is not installed
            raise BatchError(str(exc)) from exc
        return score_spark(spark, settings, day, out_dir, reasons, raw, features)
    except ContractError as exc:
        raise BatchError(f"raw data: {len(exc.problems)} problem(s): "
                         + "; ".join(exc.problems)) from exc
    except SnapshotError as exc:
        raise BatchError(str(exc)) from exc
