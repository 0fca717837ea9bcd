"""Batch scoring: every account of a snapshot, with the champion models, to Parquet for a CRM
bulk import (``<out>/as_of=YYYY-MM-DD/``).

Two engines, one output. ``duckdb`` (one machine) scores the stored snapshot with the in-memory
:class:`serving.scorer.Scorer` the API uses. ``spark`` scores through MLflow's Spark UDF
(``mlflow.pyfunc.spark_udf``): churn and upsell with their reasons, cross-sell on one row per
(account, product not held) and the best per account, then the valuation in ``mapInPandas``
(:mod:`serving.valuation`, the same row-wise arithmetic). Reasons are the API's: the k
strongest contributions raising and the k strongest lowering each probability
(:func:`serving.reasons.strongest`; on Spark the model's own ``params={"reasons": k}``, a copy
of that rule pinned by a test), labelled in plain language by the feature catalogue.

A partition is replaced whole: written beside the final folder, then swapped in by renames, so
an import never reads half a run. ``_scoring.json`` in the folder names the models used.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.catalogue import CANDIDATE_PRODUCT
from features.store import replace_dir_atomic
from serving.reasons import DIRECTIONS, Reason, as_dicts, descriptions, reason
from serving.registry import CROSS_SELL, REQUIRED_TASKS, LoadedModel, load_models
from serving.row import REASON_COLUMNS, ROW
from serving.scoring import value_models
from serving.settings import ServingSettings
from serving.valuation import ValueModel, value_accounts

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from serving.scorer import Scorer

log = logging.getLogger(__name__)

ENGINES = ("duckdb", "spark")
PART = "part-0.parquet"
SCORING_FILE = "_scoring.json"
#: The output, in column order: what a CRM import maps. The scored-account row
#: (`serving.row.ROW`) with the snapshot date after the id, then each model's reasons as JSON.
OUTPUT_SCHEMA = pa.schema([
    (ROW[0].name, pa.string()), ("as_of", pa.date32()),
    *[(c.name, pa.string() if c.kind == "text" else pa.float64()) for c in ROW[1:]],
    *[(column, pa.string()) for column in REASON_COLUMNS.values()],
])
SPARK_TYPES = {pa.string(): "string", pa.date32(): "date", pa.float64(): "double"}


class BatchError(RuntimeError):
    """Batch scoring cannot run (no snapshot, no champion); the message says what to do."""


@dataclass(frozen=True)
class BatchResult:
    as_of: date
    path: str
    accounts: int
    seconds: float
    versions: dict[str, str | None]


# --- shared: models, reasons, output --------------------------------------------------------
def served_models(settings: ServingSettings) -> dict[str, LoadedModel]:
    """The champions (or settings' URIs); churn and upsell are required, cross-sell optional."""
    from serving.registry import TrackingStoreError

    try:
        models, errors = load_models(settings.tracking_uri, settings.model_uris)
    except TrackingStoreError as exc:
        raise BatchError(str(exc)) from exc
    absent = [t for t in REQUIRED_TASKS if t not in models]
    if absent:
        raise BatchError("; ".join(errors[t] for t in absent))
    return models


def feature_descriptions(settings: ServingSettings,
                         as_of: date | None = None) -> dict[str, str]:
    from features.build import feature_groups
    from features.catalogue import all_features
    from features.event_types import stored_spec
    from features.store import FeatureStore

    spec = stored_spec(settings, FeatureStore(settings.features_dir), as_of)
    return descriptions(all_features(feature_groups(spec)))


def reasons_cell(found: dict[str, list[Reason]] | None) -> str | None:
    """A reasons column's cell: the API's reasons of one model as JSON, ``{"raising": [...],
    "lowering": [...]}`` of {feature, description, contribution} (the account's values are
    not repeated: the file holds scores, not features). None stays None."""
    return None if found is None else json.dumps(as_dicts(found, with_value=False))


def describe_reasons(raw: object, labels: dict[str, str]) -> str | None:
    """The model wrapper's reasons JSON (``{"raising"|"lowering": [{feature, contribution}]}``)
    as a reasons cell: labelled, contributions (log-odds) rounded to 4 decimals."""
    if raw is None or (isinstance(raw, float) and np.isnan(raw)):
        return None
    given = json.loads(str(raw))
    return reasons_cell({
        direction: [reason(r["feature"], r["contribution"], None, labels)
                    for r in given.get(direction, [])]
        for direction in DIRECTIONS})


def finish(frame: pd.DataFrame, upsell: ValueModel, cross: ValueModel,
           labels: dict[str, str]) -> pd.DataFrame:
    """Valuation and labelled reasons on rows the model wrapper scored (Spark, per batch)."""
    frame = value_accounts(frame, upsell, cross)
    for column in REASON_COLUMNS.values():
        frame[column] = [describe_reasons(r, labels) for r in frame[column]]
    return frame


def to_output_table(frame: pd.DataFrame) -> pa.Table:
    """The scored frame as OUTPUT_SCHEMA, by account (NaN becomes null)."""
    frame = frame.sort_values("account_id", kind="stable", ignore_index=True)
    columns = {}
    for field in OUTPUT_SCHEMA:
        values = frame[field.name]
        if field.type == pa.float64():
            columns[field.name] = pa.array(values.to_numpy("float64", na_value=np.nan),
                                           type=field.type, from_pandas=True)
        else:
            columns[field.name] = pa.array(
                values.astype(object).where(values.notna(), None).tolist(), type=field.type)
    return pa.table(columns, schema=OUTPUT_SCHEMA)


def scoring_note(as_of: date, engine: str, models: dict[str, LoadedModel],
                 catalogue_version: str | None = None) -> str:
    """``_scoring.json``: the models (URI and version per task) and the feature catalogue
    version of the snapshot scored, so a partition says what produced it."""
    return json.dumps({
        "as_of": as_of.isoformat(), "engine": engine, "catalogue_version": catalogue_version,
        "models": {t: {"uri": m.uri, "version": m.version} for t, m in models.items()},
    }, indent=2)


def stored_catalogue_version(settings: ServingSettings, as_of: date) -> str | None:
    """The catalogue version stamped in the locally stored snapshot of ``as_of``."""
    from features.store import FeatureStore

    return FeatureStore(settings.features_dir).catalogue_version(as_of)


def partition(out: str, as_of: date) -> str:
    return f"{str(out).rstrip('/')}/as_of={as_of:%Y-%m-%d}"


# --- DuckDB: one machine, the API's scorer ----------------------------------------------------
def score_duckdb(settings: ServingSettings, as_of: date, out: str, reasons: int = 3,
                 slice_rows: int = 200_000) -> BatchResult:
    """Score the stored snapshot of ``as_of`` and write ``<out>/as_of=.../part-0.parquet``.

    Accounts are scored ``slice_rows`` at a time (the scorer's matrices and the reasons'
    frames then exist for one slice only): memory grows with the output, not with the models.
    """
    from features.book import account_book
    from features.spark.uris import is_remote
    from features.validation import load_tables

    if is_remote(out):
        raise BatchError(f"--out {out}: the DuckDB engine writes local paths; "
                         "use --engine spark for Hadoop URIs")
    began = time.perf_counter()
    models = served_models(settings)
    snapshot = read_snapshot(settings, as_of)
    book = account_book(load_tables(settings.raw_dir), as_of)
    labels = feature_descriptions(settings, as_of)
    table = pa.concat_tables([
        to_output_table(scored_frame(models, snapshot.iloc[start:start + slice_rows], book,
                                     as_of, reasons, labels))
        for start in range(0, len(snapshot), slice_rows)
    ]).sort_by("account_id")
    path = write_local_partition(
        Path(out), as_of, lambda d: pq.write_table(table, d / PART),
        scoring_note(as_of, "duckdb", models, stored_catalogue_version(settings, as_of)))
    return BatchResult(as_of, str(path), table.num_rows, time.perf_counter() - began,
                       {t: m.version for t, m in models.items()})


def read_snapshot(settings: ServingSettings, as_of: date) -> pd.DataFrame:
    from features.store import FeatureStore

    store = FeatureStore(settings.features_dir)
    try:
        snapshot = store.read(as_of)
    except FileNotFoundError as exc:
        raise BatchError(f"{exc}: run `propensity features build --as-of {as_of}`") from exc
    if snapshot.empty:
        raise BatchError(f"the snapshot of {as_of} in {store.root} has no accounts")
    return snapshot


def scored_frame(models: dict[str, LoadedModel], snapshot: pd.DataFrame, book: pd.DataFrame,
                 as_of: date, reasons: int, labels: dict[str, str]) -> pd.DataFrame:
    """Accounts of ``snapshot`` scored, valued and explained by the API's Scorer."""
    from serving.scorer import Scorer

    scorer = Scorer(models, snapshot.reset_index(drop=True), book, as_of, labels, reasons)
    frame = pd.DataFrame({c: scorer.cols[c] for c in scorer.cols})
    frame["as_of"] = as_of
    for task, column in REASON_COLUMNS.items():
        frame[column] = snapshot_reasons(scorer, task) if task in models and reasons > 0 \
            else None
    return frame


def snapshot_reasons(scorer: Scorer, task: str, chunk: int = 50_000) -> list[str | None]:
    """Every account's reasons cell for ``task``, in chunks: the contributions of one chunk
    exist at a time (and no account values are gathered: the file does not show them)."""
    found: list[str | None] = []
    for start in range(0, len(scorer.ids), chunk):
        rows = list(range(start, min(start + chunk, len(scorer.ids))))
        found.extend(reasons_cell(r[task])
                     for r in scorer.reasons(rows, (task,), values=False))
    return found


def write_local_partition(out: Path, as_of: date, write, note: str) -> Path:
    """Write a new version of the partition, then publish it with one rename of the
    ``as_of=`` link (features.store.replace_dir_atomic): an import never reads half a run."""
    def fill(staging: Path) -> None:
        write(staging)
        (staging / SCORING_FILE).write_text(note)

    return replace_dir_atomic(Path(partition(str(out), as_of)), fill)


# --- Spark: MLflow's Spark UDF ---------------------------------------------------------------
def score_spark(spark: SparkSession, settings: ServingSettings, as_of: date, out: str,
                reasons: int = 3, raw_uri: str | None = None,
                features_uri: str | None = None) -> BatchResult:
    """Score the snapshot of ``as_of`` on Spark and write ``<out>/as_of=.../`` (Parquet parts)."""
    began = time.perf_counter()
    models = served_models(settings)
    if reasons > 0:
        check_reasons_rule(models)
    snapshot = spark_snapshot(spark, features_uri or str(settings.features_dir), as_of)
    scored = spark_scored(spark, settings, models, snapshot, as_of, reasons, raw_uri)
    catalogue = None if features_uri else stored_catalogue_version(settings, as_of)
    final = write_spark_partition(spark, scored, out, as_of,
                                  scoring_note(as_of, "spark", models, catalogue))
    accounts = spark.read.parquet(final).count()
    return BatchResult(as_of, final, accounts, time.perf_counter() - began,
                       {t: m.version for t, m in models.items()})


def check_reasons_rule(models: dict[str, LoadedModel]) -> None:
    """On Spark the reasons are the model wrapper's own: refuse a model logged before its
    reasons had directions (it would give the k largest by size, not the API's)."""
    old = [f"{task} ({m.uri})" for task, m in models.items()
           if tuple(getattr(m.model, "reason_directions", ())) != DIRECTIONS]
    if old:
        raise BatchError(f"model {', '.join(old)} was logged before reasons had directions "
                         "(raising, lowering): retrain it with `propensity train`, score with "
                         "--engine duckdb, or pass --reasons 0")


def spark_snapshot(spark: SparkSession, features_uri: str, as_of: date) -> DataFrame:
    from features.spark.uris import uri_exists

    folder = partition(features_uri, as_of)
    if not uri_exists(spark, folder):
        raise BatchError(f"no feature snapshot for as_of {as_of} in {features_uri}: run "
                         f"`propensity features build --engine spark --as-of {as_of}`")
    return spark.read.parquet(folder)


def spark_scored(spark: SparkSession, settings: ServingSettings, models: dict[str, LoadedModel],
                 snapshot: DataFrame, as_of: date, reasons: int,
                 raw_uri: str | None) -> DataFrame:
    """Scores, valuation and reasons as a Spark DataFrame in OUTPUT_SCHEMA's columns."""
    from pyspark.sql import functions as F

    from features.book import book_sql, holdings_sql
    from features.catalogue import Cutoff
    from features.spark.build import register_raw
    from features.spark.sql import to_spark_sql

    register_raw(spark, raw_uri or str(settings.raw_dir))  # the contract tables as views
    book = spark.sql(to_spark_sql(book_sql(Cutoff(as_of)))).select("account_id", "name",
                                                                      "owner")
    held = spark.sql(to_spark_sql(holdings_sql(Cutoff(as_of)))).withColumnRenamed(
        "product", CANDIDATE_PRODUCT)
    snapshot = spread(spark, snapshot)
    # Next best product first: its candidate rows then come from the snapshot alone, not from
    # a plan that already holds the churn and upsell UDFs (which would run twice).
    frame = with_next_best(spark, snapshot, held, models.get(CROSS_SELL))
    frame = frame.withColumn("as_of", F.lit(as_of))
    for task in ("churn", "upsell"):
        frame = with_udf_scores(spark, frame, models[task], f"{task}_probability",
                                REASON_COLUMNS[task], reasons)
    frame = with_udf_scores(spark, frame, models.get(CROSS_SELL), None,
                            REASON_COLUMNS[CROSS_SELL], reasons, offered="next_best_product")
    frame = frame.join(book, "account_id", "left")
    return valued(frame, models, feature_descriptions(settings))


def spread(spark: SparkSession, snapshot: DataFrame, rows_per_task: int = 50_000) -> DataFrame:
    """The snapshot over at least one partition per core: a locally stored snapshot is one
    Parquet row group, which Spark reads as one task (and scores on one core)."""
    parts = max(spark.sparkContext.defaultParallelism, -(-snapshot.count() // rows_per_task))
    return snapshot.repartition(parts)


def model_input(frame: DataFrame, model: LoadedModel, overrides: dict | None = None) -> Column:
    """The struct of the model's features the frame has (absent ones score as missing)."""
    from pyspark.sql import functions as F

    overrides = overrides or {}
    return F.struct(*[
        overrides[f].alias(f) if f in overrides else F.col(f"`{f}`")
        for f in model.features if f in overrides or f in frame.columns
    ])


#: Spark runs one task per core and, in a task, each UDF in its own Python worker: LightGBM's
#: OpenMP threads per worker would only oversubscribe the cores (and spin-wait).
UDF_ENV = {"OMP_NUM_THREADS": "1"}


def model_udf(spark: SparkSession, model: LoadedModel, result_type: str, params=None):
    """The model as a Spark UDF (MLflow's), run in this Python environment."""
    import mlflow.pyfunc

    return mlflow.pyfunc.spark_udf(spark, model.uri, result_type, env_manager="local",
                                   params=params, extra_env=UDF_ENV)


def reason_udf(spark: SparkSession, model: LoadedModel, reasons: int):
    """The model as a Spark UDF returning (probability, reasons JSON)."""
    return model_udf(spark, model, "probability double, reasons string", {"reasons": reasons})


def with_udf_scores(spark: SparkSession, frame: DataFrame, model: LoadedModel | None,
                    probability: str | None, reasons_column: str, reasons: int,
                    offered: str | None = None) -> DataFrame:
    """Probability (if ``probability`` names a column) and reasons of ``model`` per row; for
    cross-sell (``offered``) the candidate is the offered product and rows without one get
    no reasons."""
    from pyspark.sql import functions as F

    if model is None or (probability is None and reasons <= 0):
        return frame.withColumn(reasons_column, F.lit(None).cast("string"))
    if reasons <= 0:
        udf = model_udf(spark, model, "double")
        return frame.withColumn(probability, udf(model_input(frame, model))) \
            .withColumn(reasons_column, F.lit(None).cast("string"))
    overrides = {CANDIDATE_PRODUCT: F.col(offered)} if offered else None
    scored = reason_udf(spark, model, reasons)(model_input(frame, model, overrides))
    frame = frame.withColumn("_scored", scored)
    if probability is not None:
        frame = frame.withColumn(probability, F.col("_scored.probability"))
    keep = F.col("_scored.reasons")
    if offered:
        keep = F.when(F.col(offered).isNotNull(), keep)
    return frame.withColumn(reasons_column, keep).drop("_scored")


def with_next_best(spark: SparkSession, frame: DataFrame, held: DataFrame,
                   model: LoadedModel | None) -> DataFrame:
    """Per account the product not held with the highest adoption probability (ties: the
    model's product order, as the Scorer's argmax), or null when all are held."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    products = list(model.model.schema["categorical"].get(CANDIDATE_PRODUCT, [])) if model else []
    if not products:
        return frame.withColumn("next_best_product", F.lit(None).cast("string")) \
            .withColumn("next_best_product_probability", F.lit(None).cast("double"))
    udf = model_udf(spark, model, "double")
    offers = spark.createDataFrame(list(enumerate(products)),
                                   f"_rank int, {CANDIDATE_PRODUCT} string")
    needed = ["account_id", *[f for f in model.features
                              if f in frame.columns and f != CANDIDATE_PRODUCT]]
    candidates = frame.select(*[F.col(f"`{c}`") for c in needed]).crossJoin(
        F.broadcast(offers)).join(held, ["account_id", CANDIDATE_PRODUCT], "left_anti")
    scored = candidates.select("account_id", CANDIDATE_PRODUCT, "_rank",
                               udf(model_input(candidates, model)).alias("_p"))
    order = Window.partitionBy("account_id").orderBy(F.col("_p").desc(), F.col("_rank"))
    best = scored.withColumn("_n", F.row_number().over(order)).where("_n = 1").select(
        "account_id", F.col(CANDIDATE_PRODUCT).alias("next_best_product"),
        F.col("_p").alias("next_best_product_probability"))
    return frame.join(best, "account_id", "left")


def valued(frame: DataFrame, models: dict[str, LoadedModel],
           labels: dict[str, str]) -> DataFrame:
    """Valuation and described reasons in ``mapInPandas``; OUTPUT_SCHEMA's columns and types."""
    from pyspark.sql import functions as F

    upsell, cross = value_models(models)
    inputs = ["account_id", "as_of", "name", "owner", "segment", "arr", "churn_probability",
              "upsell_probability", "next_best_product", "next_best_product_probability",
              *REASON_COLUMNS.values()]
    typed = frame.select(*[
        (F.col(f"`{c}`") if c in frame.columns else F.lit(None))
        .cast(SPARK_TYPES[OUTPUT_SCHEMA.field(c).type]).alias(c) for c in inputs])
    ddl = ", ".join(f"`{f.name}` {SPARK_TYPES[f.type]}" for f in OUTPUT_SCHEMA)
    names = OUTPUT_SCHEMA.names

    def batches(parts: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for part in parts:
            yield finish(part, upsell, cross, labels)[names]

    return typed.mapInPandas(batches, ddl)


def write_spark_partition(spark: SparkSession, frame: DataFrame, out: str, as_of: date,
                          note: str) -> str:
    """Spark writes the partition beside its final place; Hadoop renames swap it in."""
    from features.spark.uris import hadoop_path, join_uri, write_text

    final = partition(out, as_of)
    staging = join_uri(out, f"_as_of={as_of:%Y-%m-%d}.tmp-{os.getpid()}")
    retired = join_uri(out, f"_as_of={as_of:%Y-%m-%d}.old-{os.getpid()}")
    frame.sortWithinPartitions("account_id").write.mode("overwrite").parquet(staging)
    write_text(spark, join_uri(staging, SCORING_FILE), note)
    staging_path, fs = hadoop_path(spark, staging)
    final_path, _ = hadoop_path(spark, final)
    retired_path, _ = hadoop_path(spark, retired)
    try:
        if fs.exists(final_path):
            fs.rename(final_path, retired_path)
        if not fs.rename(staging_path, final_path):
            raise BatchError(f"could not move {staging} to {final}")
    finally:
        fs.delete(staging_path, True)
        fs.delete(retired_path, True)
    return final
