"""Batch scoring: the DuckDB engine checked against the models and the valuation directly, and
the Spark engine (MLflow's Spark UDF) against the DuckDB engine on the same snapshot."""

from __future__ import annotations

import json
from datetime import date
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from propensity_cli import app
from serving.batch import OUTPUT_SCHEMA, SCORING_FILE, describe_reasons
from serving.settings import ServingSettings
from tests.spark_session import spark_test_settings, start_spark

AS_OF = date(2025, 5, 1)  # the newest snapshot of the served book (tests/serving/conftest.py)
PROBABILITIES = ("churn_probability", "upsell_probability", "next_best_product_probability")


def settings_for(data) -> ServingSettings:
    tracking = f"sqlite:///{data / 'mlflow' / 'mlflow.db'}"
    return ServingSettings(data_dir=data, mlflow_tracking_uri=tracking)


def read_partition(folder) -> pd.DataFrame:
    """Every Parquet part of a partition folder, by account."""
    parts = sorted(folder.glob("part-*.parquet"))
    table = pq.ParquetDataset(parts, partitioning=None).read()
    return table.to_pandas().sort_values("account_id", ignore_index=True)


@pytest.fixture(scope="module")
def duck_run(served_data, tmp_path_factory):
    from serving.batch import score_duckdb

    out = tmp_path_factory.mktemp("scores-duckdb")
    return score_duckdb(settings_for(served_data), AS_OF, str(out)), out


# --- plain functions --------------------------------------------------------------------------
def test_reasons_get_plain_language_labels():
    raw = json.dumps({"raising": [{"feature": "seats", "contribution": 0.123456}],
                      "lowering": [{"feature": "unknown_x", "contribution": -2.0}]})
    assert json.loads(describe_reasons(raw, {"seats": "Paid seats"})) == {
        "raising": [{"feature": "seats", "description": "Paid seats", "contribution": 0.1235}],
        "lowering": [{"feature": "unknown_x", "description": "unknown_x", "contribution": -2.0}],
    }
    assert describe_reasons(None, {}) is None
    assert describe_reasons(float("nan"), {}) is None


def test_spark_refuses_a_model_whose_reasons_have_no_directions():
    """A model logged before the reasons rule gives the k largest by size: not the API's."""
    from serving.batch import BatchError, check_reasons_rule

    new = SimpleNamespace(model=SimpleNamespace(reason_directions=("raising", "lowering")),
                          uri="models:/propensity-upsell/2")
    old = SimpleNamespace(model=SimpleNamespace(), uri="models:/propensity-churn/1")
    check_reasons_rule({"upsell": new})
    with pytest.raises(BatchError, match=r"model churn \(models:/propensity-churn/1\) was "
                                         r"logged before reasons had directions"):
        check_reasons_rule({"churn": old, "upsell": new})


# --- DuckDB engine ------------------------------------------------------------------------------
@pytest.mark.slow
def test_duckdb_engine_writes_one_file_per_as_of_with_every_account(duck_run, served_data):
    from features.store import FeatureStore

    result, out = duck_run
    folder = out / f"as_of={AS_OF}"
    assert result.path == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == [SCORING_FILE, "part-0.parquet"]
    assert pq.read_schema(folder / "part-0.parquet").remove_metadata() == OUTPUT_SCHEMA
    scores = read_partition(folder)
    snapshot = FeatureStore(served_data / "features").read(AS_OF)
    assert scores["account_id"].tolist() == sorted(snapshot["account_id"])
    assert result.accounts == len(snapshot)
    assert (scores["as_of"] == AS_OF).all()
    note = json.loads((folder / SCORING_FILE).read_text())
    assert note["engine"] == "duckdb"
    assert {t: m["version"] for t, m in note["models"].items()} == result.versions
    assert note["catalogue_version"] == FeatureStore(served_data / "features").catalogue_version(
        AS_OF)


@pytest.mark.slow
def test_duckdb_scores_are_the_models_own(duck_run, served_data):
    """Probabilities equal the pyfunc's predict(); money and play equal the valuation's."""
    from features.book import account_book
    from features.store import FeatureStore
    from features.validation import load_tables
    from serving.batch import served_models, value_models
    from serving.valuation import OUTPUT_COLUMNS, value_accounts

    _, out = duck_run
    scores = read_partition(out / f"as_of={AS_OF}")
    settings = settings_for(served_data)
    models = served_models(settings)
    snapshot = FeatureStore(served_data / "features").read(AS_OF)
    snapshot = snapshot.sort_values("account_id", ignore_index=True)
    for task in ("churn", "upsell"):
        predicted = models[task].model.predict(None, snapshot)["probability"]
        np.testing.assert_allclose(scores[f"{task}_probability"], predicted, rtol=1e-12)
    held = account_book(load_tables(served_data / "raw"), AS_OF).set_index("account_id")
    offered = scores.dropna(subset=["next_best_product"])
    assert len(offered) > 0
    assert not any(p in held.loc[a, "products_held"]
                   for a, p in zip(offered["account_id"], offered["next_best_product"],
                                   strict=True))
    valued = value_accounts(scores.drop(columns=list(OUTPUT_COLUMNS)), *value_models(models))
    for column in OUTPUT_COLUMNS:
        left, right = valued[column], scores[column]
        assert left.isna().equals(right.isna()), column
        assert left.dropna().tolist() == right.dropna().tolist(), column
    churn_reasons = json.loads(scores["churn_reasons"].iloc[0])
    assert set(churn_reasons) == {"raising", "lowering"}
    assert 0 < len(churn_reasons["raising"]) + len(churn_reasons["lowering"]) <= 6
    assert all(r["description"] for found in churn_reasons.values() for r in found)
    assert scores["cross_sell_reasons"].isna().equals(scores["next_best_product"].isna())


@pytest.mark.slow
def test_a_batch_file_gives_the_apis_reasons(duck_run, served_data, monkeypatch):
    """The same account and models: the reasons of the batch file are those of
    GET /v1/accounts/{id}, raising and lowering, for every model (the API adds the values)."""
    from serving.state import load_generation
    from tests.serving.test_api import serve

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = ServingSettings(data_dir=served_data, auth_enabled=False)
    generation = load_generation(settings)
    assert generation.scorer.k == 3  # the batch default
    _, out = duck_run
    scores = read_partition(out / f"as_of={AS_OF}").set_index("account_id")
    offered = scores["next_best_product"].dropna().index
    accounts = sorted({*scores.index[:12], *offered[:12]})
    with serve(generation, settings) as client:
        for account in accounts:
            body = client.get(f"/v1/accounts/{account}").json()
            for task, column in (("churn", "churn_reasons"), ("upsell", "upsell_reasons"),
                                 ("cross-sell", "cross_sell_reasons")):
                api = body["reasons"].get(task)
                cell = scores.loc[account, column]
                if api is None:
                    assert cell is None, (account, task)
                    continue
                without_values = {d: [{k: r[k] for k in ("feature", "description",
                                                         "contribution")} for r in found]
                                  for d, found in api.items()}
                assert json.loads(cell) == without_values, (account, task)


@pytest.mark.slow
def test_scoring_in_slices_writes_the_same_scores(duck_run, served_data, tmp_path):
    from serving.batch import score_duckdb

    sliced = score_duckdb(settings_for(served_data), AS_OF, str(tmp_path), slice_rows=64)
    assert sliced.accounts > 3 * 64
    whole = read_partition(duck_run[1] / f"as_of={AS_OF}")
    pd.testing.assert_frame_equal(read_partition(tmp_path / f"as_of={AS_OF}"), whole)


@pytest.mark.slow
def test_reasons_computed_in_chunks_are_those_of_the_whole_frame(served_data):
    from features.book import account_book
    from features.store import FeatureStore
    from features.validation import load_tables
    from serving.batch import served_models, snapshot_reasons
    from serving.scorer import Scorer

    models = served_models(settings_for(served_data))
    snapshot = FeatureStore(served_data / "features").read(AS_OF)
    book = account_book(load_tables(served_data / "raw"), AS_OF)

    def scorer() -> Scorer:
        return Scorer(models, snapshot, book, AS_OF, {"arr": "ARR"}, 2)

    whole = snapshot_reasons(scorer(), "churn")
    chunked = snapshot_reasons(scorer(), "churn", chunk=64)
    assert len(snapshot) > 3 * 64
    assert chunked == whole and len(whole) == len(snapshot)
    assert all(len(json.loads(r)["raising"]) <= 2 for r in whole)


@pytest.mark.slow
def test_a_rerun_replaces_the_partition_and_bad_input_writes_nothing(served_data, tmp_path):
    runner = CliRunner()
    args = ["score", "--as-of", str(AS_OF), "--out", str(tmp_path), "--reasons", "0",
            "--data-dir", str(served_data)]
    (tmp_path / f"as_of={AS_OF}").mkdir()
    (tmp_path / f"as_of={AS_OF}" / "part-00007-stale.parquet").write_text("old run")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [".versions", f"as_of={AS_OF}"]
    assert len(list((tmp_path / ".versions").glob("as_of=*"))) == 1  # no staging left
    assert sorted(p.name for p in (tmp_path / f"as_of={AS_OF}").iterdir()) == [
        SCORING_FILE, "part-0.parquet"]
    assert read_partition(tmp_path / f"as_of={AS_OF}")["churn_reasons"].isna().all()

    missing = runner.invoke(app, [*args[:2], "2025-04-15", *args[3:]])
    assert missing.exit_code == 1
    assert "no feature snapshot for as_of 2025-04-15" in missing.output
    assert not (tmp_path / "as_of=2025-04-15").exists()
    bad = runner.invoke(app, ["score", "--as-of", "May 1st", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "'--as-of': 'May 1st': not a date" in bad.output


# --- Spark engine ------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.spark
def test_spark_engine_gives_the_same_scores(duck_run, served_data, tmp_path, monkeypatch):
    """`propensity score --engine spark` (spark_udf, mapInPandas) against the DuckDB engine."""
    start_spark()  # the command reuses this small local session
    monkeypatch.setenv("PROPENSITY_SPARK_MASTER", spark_test_settings().spark_master)
    monkeypatch.setenv("PROPENSITY_MLFLOW_TRACKING_URI",
                       settings_for(served_data).mlflow_tracking_uri)
    result = CliRunner().invoke(app, ["score", "--engine", "spark", "--as-of", str(AS_OF),
                                      "--out", str(tmp_path), "--data-dir", str(served_data)])
    assert result.exit_code == 0, result.output
    on_spark = read_partition(tmp_path / f"as_of={AS_OF}")
    on_duckdb = read_partition(duck_run[1] / f"as_of={AS_OF}")
    assert json.loads((tmp_path / f"as_of={AS_OF}" / SCORING_FILE).read_text())["engine"] \
        == "spark"
    assert list(on_spark.columns) == OUTPUT_SCHEMA.names
    assert dict(on_spark.dtypes) == dict(on_duckdb.dtypes)
    assert on_spark["account_id"].tolist() == on_duckdb["account_id"].tolist()
    assert on_spark["next_best_product"].notna().sum() > 0
    for column in OUTPUT_SCHEMA.names:
        left, right = on_spark[column], on_duckdb[column]
        assert left.isna().equals(right.isna()), column
        if left.dtype.kind == "f":
            np.testing.assert_allclose(left.dropna(), right.dropna(), rtol=1e-9, err_msg=column)
        elif column.endswith("_reasons"):
            for a, b in zip(left.dropna(), right.dropna(), strict=True):
                a, b = json.loads(a), json.loads(b)
                for direction in ("raising", "lowering"):
                    assert [r["feature"] for r in a[direction]] == [
                        r["feature"] for r in b[direction]], column
                    np.testing.assert_allclose([r["contribution"] for r in a[direction]],
                                               [r["contribution"] for r in b[direction]],
                                               atol=1.01e-4)
        else:
            assert left.dropna().tolist() == right.dropna().tolist(), column
