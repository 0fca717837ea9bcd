"""`models list` reads the embedded store without MLflow: the same rows as MLflow gives."""

from __future__ import annotations

import math
import sqlite3

from training.registry_listing import local_store_file, read_versions
from training.settings import TrainingSettings
from training.tasks import CHALLENGER, CHAMPION, registered_name
from training.tracking import configure, list_versions


def test_the_sqlite_read_equals_mlflows_answer(mlflow_data_dir):
    from mlflow import MlflowClient

    settings = TrainingSettings(data_dir=mlflow_data_dir)
    configure(settings.tracking_uri, settings.mlflow_dir)
    client = MlflowClient()
    experiment = client.create_experiment("listing")
    churn, upsell = registered_name("churn"), registered_name("upsell")
    for name in (churn, upsell):
        client.create_registered_model(name)
    runs = []
    for auc in (0.71, 0.74, 0.73):
        run = client.create_run(experiment).info.run_id
        client.log_metric(run, "test_roc_auc", auc - 0.01, step=0)
        client.log_metric(run, "test_roc_auc", auc, step=1)  # the latest value is listed
        client.log_metric(run, "test_ece", math.nan if auc == 0.74 else 0.01)
        runs.append(run)
    source = (mlflow_data_dir / "model").as_uri()
    for run in runs:
        client.create_model_version(churn, source=source, run_id=run)
    client.create_model_version(churn, source=source)  # no run: no metrics
    client.create_model_version(upsell, source=source, run_id=runs[0])
    client.delete_model_version(churn, "3")
    client.set_registered_model_alias(churn, CHAMPION, "2")
    client.set_registered_model_alias(churn, CHALLENGER, "1")
    client.set_registered_model_alias(upsell, "candidate", "1")
    client.set_registered_model_alias(upsell, CHAMPION, "1")
    names = [churn, upsell, registered_name("cross-sell")]  # cross-sell: never registered

    db = local_store_file(settings.tracking_uri)
    assert db == (mlflow_data_dir / "mlflow" / "mlflow.db").resolve()
    fast, reference = read_versions(db, names), list_versions(names)
    assert [(r["name"], r["version"], r["aliases"]) for r in fast] == [
        (churn, 4, []), (churn, 2, [CHAMPION]), (churn, 1, [CHALLENGER]),
        (upsell, 1, ["candidate", CHAMPION]),
    ]
    assert [r["roc_auc"] for r in fast] == [None, 0.74, 0.71, 0.71]
    assert fast[0]["ece"] is None and math.isnan(fast[1]["ece"]) and fast[2]["ece"] == 0.01
    assert _comparable(fast) == _comparable(reference)


def _comparable(rows: list[dict]) -> list[dict]:
    """NaN is not equal to itself: compare it as a marker."""
    return [{k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
            for r in rows]


def test_only_an_existing_sqlite_store_is_read_directly(tmp_path):
    db = tmp_path / "mlflow.db"
    assert local_store_file(f"sqlite:///{db}") is None  # not there yet: MLflow creates it
    db.touch()
    assert local_store_file(f"sqlite:///{db}") == db
    assert local_store_file("http://mlflow.internal:5000") is None
    assert local_store_file("databricks") is None


def test_a_file_without_mlflows_tables_gives_up_for_the_mlflow_path(tmp_path):
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE model_versions (name TEXT)")
    assert read_versions(db, [registered_name("churn")]) is None
