"""Retraining triggers on hand-made monitor results, and the monitor's MLflow run."""

from __future__ import annotations

import pytest

from serving.monitoring.triggers import decide, decide_all
from serving.settings import ServingSettings


def result(**changes) -> dict:
    """A monitor result where nothing fires: a young champion, no drift, AUC as tested."""
    base = {
        "as_of": "2025-05-01",
        "models": {"churn": {"version": "3", "registered_at": "2025-04-20T10:00:00+00:00",
                             "test_metrics": {"roc_auc": 0.80, "ece": 0.02}}},
        "drift": [{"feature": "events_30d", "psi": 0.05, "importance": 0.3, "alert": False,
                   "segments_alerting": []},
                  {"feature": "nps_last", "psi": 0.02, "importance": 0.1, "alert": False,
                   "segments_alerting": []}],
        "performance": [
            {"as_of": "2025-01-01", "task": "churn", "roc_auc": 0.79, "ece": 0.03,
             "intervals": {"roc_auc": [0.74, 0.84]}, "estimated_roc_auc": 0.78,
             "estimated_roc_auc_sd": 0.02},
            {"as_of": "2025-04-01", "task": "churn", "roc_auc": None, "ece": None,
             "estimated_roc_auc": 0.79, "estimated_roc_auc_sd": 0.02}],
    }
    base.update(changes)
    return base


SETTINGS = ServingSettings(data_dir="unused")


def test_nothing_fires_on_a_healthy_young_model():
    d = decide(result(), SETTINGS, "churn")
    assert (d.retrain, d.recalibrate, d.reasons) == (False, False, [])


def test_an_old_champion_is_retrained():
    r = result()
    r["models"]["churn"]["registered_at"] = "2025-03-01T00:00:00+00:00"
    d = decide(r, SETTINGS, "churn")
    assert d.retrain and d.reasons == [
        "age: the champion v3 was registered 61 days before 2025-05-01 (limit 30)"]


def test_drift_fires_only_on_enough_importance():
    r = result()
    r["drift"][1]["segments_alerting"] = ["SMB"]  # 10 % of the importance: below 20 %
    assert not decide(r, SETTINGS, "churn").retrain
    r["drift"][0]["alert"] = True  # + 30 %
    d = decide(r, SETTINGS, "churn")
    assert d.retrain and d.reasons == [
        "drift: features on alert carry 40% of the importance (limit 20%): events_30d, "
        "nps_last"]


def test_a_realised_auc_drop_beyond_its_interval_fires_and_within_it_does_not():
    r = result()
    r["performance"][0].update(roc_auc=0.70, intervals={"roc_auc": [0.60, 0.76]})
    assert not decide(r, SETTINGS, "churn").retrain  # 0.76 reaches 0.80 - 0.05
    r["performance"][0]["intervals"]["roc_auc"] = [0.65, 0.74]
    d = decide(r, SETTINGS, "churn")
    assert d.retrain and d.reasons[0].startswith(
        "performance: realised ROC AUC 0.700 (95% up to 0.740) of the run of 2025-01-01")


def test_an_estimated_auc_drop_fires_before_labels_mature():
    r = result()
    r["performance"][1].update(estimated_roc_auc=0.70, estimated_roc_auc_sd=0.01)
    d = decide(r, SETTINGS, "churn")
    assert d.retrain and "estimated ROC AUC 0.700 (+ 2 sd: 0.720)" in d.reasons[0]


def test_calibration_alone_advises_recalibration_not_retraining():
    r = result()
    r["performance"][0]["ece"] = 0.08  # test 0.02 + margin 0.03 < 0.08
    d = decide(r, SETTINGS, "churn")
    assert (d.retrain, d.recalibrate) == (False, True)
    assert d.reasons[0].startswith("calibration: ECE 0.080 of the run of 2025-01-01")


def test_the_setting_switches_retraining_off_but_keeps_the_reasons():
    r = result()
    r["models"]["churn"]["registered_at"] = "2024-01-01T00:00:00+00:00"
    d = decide_all(r, ServingSettings(data_dir="unused", retrain_enabled=False))["churn"]
    assert not d.retrain and d.reasons


@pytest.mark.slow
def test_the_monitor_logs_a_run_against_the_model_version(mlflow_data_dir):
    import mlflow

    from serving.monitoring.monitor import log_to_mlflow

    settings = ServingSettings(data_dir=mlflow_data_dir)
    mlflow.set_tracking_uri(settings.tracking_uri)
    experiment = mlflow.create_experiment(
        "propensity-churn", artifact_location=(mlflow_data_dir / "art").as_uri())
    with mlflow.start_run(experiment_id=experiment) as training_run:
        pass
    r = result(score_drift={"vs_training": [{"task": "churn", "psi": 0.07}]})
    r["models"]["churn"]["run_id"] = training_run.info.run_id
    r["drift"][0]["alert"] = True
    (run_id,) = log_to_mlflow(r, settings)
    run = mlflow.get_run(run_id)
    assert run.info.experiment_id == experiment
    assert run.data.tags["model_version"] == "3" and run.data.tags["monitor"] == "true"
    assert run.data.metrics["drift_alerts"] == 1 and run.data.metrics["max_feature_psi"] == 0.05
    assert run.data.metrics["score_psi_vs_training"] == 0.07
    history = mlflow.MlflowClient().get_metric_history(run_id, "run_estimated_roc_auc")
    assert sorted(m.value for m in history) == [0.78, 0.79]


def test_cross_sell_is_decided_on_its_pooled_rows_not_a_products():
    """A product's own bad run (few adoptions, wide interval) does not retrain; the pooled
    rows, comparable with the pooled test AUC, do."""
    r = result()
    r["models"]["cross-sell"] = {"version": "2", "registered_at": "2025-04-20T10:00:00+00:00",
                                 "test_metrics": {"roc_auc": 0.70, "ece": 0.01}}
    pooled = {"as_of": "2025-01-01", "task": "cross-sell", "roc_auc": 0.69, "ece": 0.01,
              "intervals": {"roc_auc": [0.64, 0.74]}, "estimated_roc_auc": 0.68,
              "estimated_roc_auc_sd": 0.02}
    product = {**pooled, "product": "analytics", "roc_auc": 0.40,
               "intervals": {"roc_auc": [0.35, 0.45]}, "ece": 0.2}
    r["performance"] += [pooled, product]
    d = decide(r, SETTINGS, "cross-sell")
    assert (d.retrain, d.recalibrate, d.reasons) == (False, False, [])
    pooled.update(roc_auc=0.55, intervals={"roc_auc": [0.50, 0.60]})
    d = decide(r, SETTINGS, "cross-sell")
    assert d.retrain and d.reasons == [
        "performance: realised ROC AUC 0.550 (95% up to 0.600) of the run of 2025-01-01 is "
        "below the test AUC 0.700 - 0.05"]
    assert set(decide_all(r, SETTINGS)) == {"churn", "cross-sell"}
    assert not decide(r, SETTINGS, "churn").retrain


def test_a_recalibrated_champion_ages_from_its_trees_through_the_monitor_summary():
    """The monitor hands the triggers the trees' registration of a recalibrated version, so
    the age trigger fires on a young recalibration of old trees (and not on a plain one)."""
    from types import SimpleNamespace

    from serving.monitoring.monitor import model_summary

    def served(meta: dict):
        return SimpleNamespace(uri="models:/propensity-churn/4", version="4", run_id="r",
                               meta={"test_metrics": {"roc_auc": 0.80, "ece": 0.02}, **meta})

    young = "2025-04-20T10:00:00+00:00"
    recalibrated = model_summary(
        served({"recalibration": {"trees_registered_at": "2025-03-01T00:00:00+00:00"}}), young)
    plain = model_summary(served({}), young)
    assert recalibrated["trees_registered_at"] == "2025-03-01T00:00:00+00:00"
    assert plain["trees_registered_at"] is None
    fired = decide(result(models={"churn": recalibrated}), SETTINGS, "churn")
    calm = decide(result(models={"churn": plain}), SETTINGS, "churn")
    assert fired.retrain and fired.reasons[0].startswith("age: the trees of the champion v4")
    assert (calm.retrain, calm.reasons) == (False, [])
