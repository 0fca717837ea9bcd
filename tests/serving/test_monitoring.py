"""`propensity monitor` on the trained 300-account book: realised performance against a direct
computation, estimates for runs not matured, the JSON / HTML / API / metrics outputs, and
what is said when history, matured runs or the training window are missing."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from serving.monitoring import performance as perf
from serving.settings import ServingSettings

MATURED = (date(2024, 12, 1), date(2025, 1, 1))  # 90 days before the export (2025-05-01)
PENDING = date(2025, 4, 1)


def _copy(served_data: Path, folder: Path) -> Path:
    data = folder / "book"
    shutil.copytree(served_data, data, ignore=shutil.ignore_patterns("audit.log"))
    return data


def _history(settings: ServingSettings, days) -> None:
    from serving.batch import score_duckdb
    from serving.history import history_dir

    for day in days:
        score_duckdb(settings, day, out=str(history_dir(settings.data_dir)), reasons=0)


def _cli(data: Path, *args: str):
    from propensity_cli import app

    return CliRunner().invoke(app, ["monitor", *args, "--no-log-mlflow", "--data-dir",
                                    str(data)])


@pytest.fixture(scope="module")
def monitored(served_data, tmp_path_factory) -> tuple[ServingSettings, dict]:
    """A copy of the book with three runs in its history, and the monitor's result."""
    from serving.monitoring.monitor import monitor

    data = _copy(served_data, tmp_path_factory.mktemp("monitored"))
    settings = ServingSettings(data_dir=data, auth_enabled=False)
    _history(settings, [*MATURED, PENDING])
    return settings, monitor(settings)


def _row(result: dict, day: date, task: str) -> dict:
    (row,) = [r for r in result["performance"]
              if r["as_of"] == day.isoformat() and r["task"] == task]
    return row


@pytest.mark.parametrize("task", ["churn", "upsell"])
def test_realised_performance_equals_a_direct_computation(monitored, task):
    """The history's probabilities of a matured run against its labels, computed here with
    training's own labels and metrics."""
    from features.validation import load_tables
    from serving.history import ScoreHistory, history_dir
    from training.labels import make_labels
    from training.metrics import evaluate

    settings, result = monitored
    day = MATURED[1]
    run = ScoreHistory(history_dir(settings.data_dir)).read(day)
    kwargs = {"min_growth": settings.upsell_min_growth} if task == "upsell" else {}
    labels = make_labels(task, load_tables(settings.raw_dir), day, 90, **kwargs)
    both = run.merge(labels, on="account_id")
    column = f"{task}_probability"

    def direct(frame: pd.DataFrame) -> dict:
        return evaluate(frame["label"].to_numpy(), frame[column].to_numpy(),
                        value=frame["value"].clip(lower=0).to_numpy(),
                        exposure=frame["arr_at_as_of"].to_numpy())

    expected = direct(both)
    row = _row(result, day, task)
    assert row["matured"] is True and row["labelled"] == len(both)
    assert row["positives"] == int(both["label"].sum())
    assert row["roc_auc"] == pytest.approx(expected["roc_auc"], abs=1e-12)
    assert row["lift_at_10"] == pytest.approx(expected["lift_at_10"], abs=1e-12)
    assert row["ece"] == pytest.approx(expected["ece"], abs=1e-12)
    assert row["revenue_capture_at_10"] == pytest.approx(expected["value_capture_at_10"],
                                                         abs=1e-12)
    low, high = row["intervals"]["roc_auc"]
    assert low < row["roc_auc"] < high
    assert sum(b["accounts"] for b in row["calibration_curve"]) == len(both)
    for segment in row["segments"]:
        part = both[both["segment"] == segment["segment"]]
        if segment.get("roc_auc") is not None:
            assert segment["roc_auc"] == pytest.approx(direct(part)["roc_auc"], abs=1e-12)


def test_runs_not_matured_have_the_estimate_only(monitored):
    from serving.history import ScoreHistory, history_dir

    settings, result = monitored
    row = _row(result, PENDING, "churn")
    assert row["matured"] is False and row["roc_auc"] is None and row["ece"] is None
    p = ScoreHistory(history_dir(settings.data_dir)).read(PENDING)["churn_probability"]
    assert row["estimated_roc_auc"] == pytest.approx(perf.expected_roc_auc(p.to_numpy()))
    assert row["matures_on"] == "2025-06-30"
    assert result["notes"] == []


def test_the_json_names_drift_scores_and_performance(monitored):
    settings, result = monitored
    assert {r["feature"] for r in result["drift"]} >= {"events_30d", "segment", "arr"}
    assert all({"feature", "psi", "alert"} <= set(r) for r in result["drift"])
    assert {r["task"] for r in result["score_drift"]["vs_training"]} == {"churn", "upsell"}
    assert [r["as_of"] for r in result["score_drift"]["vs_previous"]] == [
        d.isoformat() for d in (*MATURED, PENDING) for _ in ("churn", "upsell")]
    assert all({"as_of", "task", "matured", "roc_auc", "estimated_roc_auc", "ece"} <= set(r)
               for r in result["performance"])
    assert len(result["performance"]) == 6
    window = result["models"]["churn"]["window"]
    assert result["training_window"][0] == window["train_from"]
    assert result["training_window"][-1] == window["train_to"]


def test_cli_writes_json_html_and_serves_api_and_metrics(served_data, tmp_path):
    from fastapi.testclient import TestClient

    from serving.app import create_app

    data = _copy(served_data, tmp_path)
    settings = ServingSettings(data_dir=data, auth_enabled=False)
    _history(settings, [MATURED[1]])
    report = tmp_path / "report.html"
    result = _cli(data, "--json", "--html", str(report))
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["as_of"] == "2025-05-01" and {"drift", "score_drift", "performance",
                                                 "triggers"} <= set(printed)
    page = report.read_text()
    assert page.count("data:image/png;base64,") >= 3  # PSI bars, performance, calibration
    assert "<script" not in page and "http" not in page  # self-contained
    saved = json.loads((data / "monitoring" / "latest.json").read_text())
    assert saved == printed
    with TestClient(create_app(settings, load_on_start=False)) as client:
        answer = client.get("/v1/monitoring")
        assert answer.status_code == 200 and answer.json() == printed
        metrics = client.get("/metrics").text
    psi = next(r for r in printed["drift"] if r["feature"] == "events_30d")["psi"]
    assert f'propensity_feature_psi{{family="usage",feature="events_30d"}} {psi}' in metrics
    realised = _row(printed, MATURED[1], "churn")["roc_auc"]
    assert (f'propensity_monitor_roc_auc{{as_of="2025-01-01",kind="realised",task="churn"}} '
            f"{realised}") in metrics


def test_no_monitor_result_yet_is_a_404_that_says_what_to_run(tmp_path):
    from fastapi.testclient import TestClient

    from serving.app import create_app

    settings = ServingSettings(data_dir=tmp_path, auth_enabled=False)
    with TestClient(create_app(settings, load_on_start=False)) as client:
        answer = client.get("/v1/monitoring")
    assert answer.status_code == 404
    assert answer.json()["detail"]["error"] == "no_monitoring"
    assert "propensity monitor" in answer.json()["detail"]["message"]


def test_no_history_says_so_and_still_reports_drift(served_data, tmp_path):
    data = _copy(served_data, tmp_path)
    result = _cli(data)
    assert result.exit_code == 0, result.output
    assert "no score history in" in result.output and "propensity run" in result.output
    assert "input drift at 2025-05-01" in result.output


def test_no_matured_run_says_when_the_first_matures(served_data, tmp_path):
    data = _copy(served_data, tmp_path)
    _history(ServingSettings(data_dir=data), [PENDING])
    result = _cli(data, "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["notes"] == [
        "no run has matured yet (labels need the horizon to pass before the data's "
        "extraction): the first matures on 2025-06-30; estimates only"]
    assert all(r["roc_auc"] is None and r["estimated_roc_auc"] for r in printed["performance"])


def test_a_missing_training_window_is_named_and_nothing_is_saved(served_data, tmp_path):
    from features.store import FeatureStore

    data = _copy(served_data, tmp_path)
    settings = ServingSettings(data_dir=data)
    store = FeatureStore(settings.features_dir)
    from serving.registry import load_models

    window = load_models(settings.tracking_uri, {})[0]["churn"].meta["window"]
    for day in store.dates():
        if window["train_from"] <= day.isoformat() <= window["train_to"]:
            shutil.rmtree(store.path(day))
    result = _cli(data)
    assert result.exit_code == 1
    assert f"the training window {window['train_from']} .. {window['train_to']}" in result.output
    assert "propensity features build --from" in result.output
    assert "Traceback" not in result.output
    assert not (data / "monitoring").exists()


# --- label-free estimation on generated data -------------------------------------------------
@pytest.mark.slow
def test_the_estimate_of_calibrated_probabilities_is_within_its_stated_error(tmp_path):
    """The generator's true probabilities are calibrated by construction: on 2,000 accounts
    the realised AUC of each matured date falls within 3 standard deviations of the estimate
    (the report shows +-2: 95 %; 3 keeps six comparisons from failing by chance)."""
    from features.labels import make_labels
    from features.validation import load_tables
    from simulator.generator import generate_into
    from simulator.oracle import oracle_probabilities
    from simulator.truth import truth_dir

    generate_into(tmp_path, 2000, 16, seed=1, start=date(2024, 1, 1))
    tables = load_tables(tmp_path / "raw")
    gaps = []
    for task in ("churn", "upsell"):
        for day in (date(2024, 8, 1), date(2024, 11, 1), date(2025, 1, 1)):
            labels = make_labels(task, tables, day, 90)
            p = oracle_probabilities(truth_dir(tmp_path), task,
                                     labels[["account_id", "as_of"]], 90)
            est = perf.estimate(p, simulations=100, seed=0)
            realised = perf.roc_auc(labels["label"].to_numpy(float), p)
            gaps.append(abs(realised - est.roc_auc) / est.roc_auc_sd)
    assert max(gaps) < 3, gaps


# --- hand-made -------------------------------------------------------------------------------
def test_expected_auc_by_hand():
    # Sorted 0.8, 0.2: expected TP (0, .8, 1), FP (0, .2, 1): area .2 x .4 + .8 x .9 = 0.8
    assert perf.expected_roc_auc(np.array([0.2, 0.8])) == pytest.approx(0.8)
    assert perf.expected_roc_auc(np.array([0.3, 0.3, 0.3])) == pytest.approx(0.5)
    assert perf.expected_roc_auc(np.array([1.0, 0.0])) == pytest.approx(1.0)


def test_realised_metrics_by_hand():
    y = np.array([1.0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    value = np.array([100.0, 0, 0, 50, 0, 0, 0, 0, 0, 0])
    got = perf.realised_metrics(y, p, value, np.ones(10))
    # pairs (pos, neg): 0.9 beats all 8; 0.1 beats 0.8? no; ties with 7 -> 7 halves
    assert got["roc_auc"] == pytest.approx((8 + 3.5) / 16)
    assert got["lift_at_10"] == pytest.approx(1 / 1 / 0.2)  # the top row is a positive
    assert got["revenue_capture_at_10"] == pytest.approx(100 / 150)
    # bins: 0.9 -> bin 9 (1 vs .9), 0.8 -> bin 8 (0 vs .8), eight 0.1 -> bin 1 (1 vs .8)
    assert got["ece"] == pytest.approx((0.1 + 0.8 + 0.2) / 10)
