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
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from serving.monitoring import performance as perf
from serving.settings import ServingSettings

MATURED = (date(2024, 12, 1), date(2025, 1, 1))  # 90 days before the export (2025-05-01)
PENDING = date(2025, 4, 1)
PRODUCTS = ("analytics", "automation", "integrations")  # the cross-sell model's offers


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


def _row(result: dict, day: date, task: str, product: str | None = None) -> dict:
    (row,) = [r for r in result["performance"] if r["as_of"] == day.isoformat()
              and r["task"] == task and r.get("product") == product]
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


def _direct_cross_sell_pairs(settings: ServingSettings, day: date) -> pd.DataFrame:
    """The run's (account, product not held) pairs computed here: the model version its note
    names, the product set as a column of the snapshot (the pyfunc's own encoding, not the
    monitor's code swap), holdings from the book, labels and value as training makes them."""
    from features.book import account_book
    from features.store import FeatureStore
    from features.validation import load_tables
    from serving.history import ScoreHistory, history_dir
    from serving.registry import load_model
    from serving.valuation import ValueModel
    from training.labels import make_labels

    tables = load_tables(settings.raw_dir)
    note = ScoreHistory(history_dir(settings.data_dir)).note(day)["models"]["cross-sell"]
    model = load_model("cross-sell", note["uri"], settings.tracking_uri)
    snapshot = FeatureStore(settings.features_dir).read(day)
    held = dict(zip(account_book(tables, day)["account_id"],
                    account_book(tables, day)["products_held"], strict=True))
    parts = []
    for product in PRODUCTS:
        frame = snapshot.assign(candidate_product=product)
        p = model.model.probability_matrix(model.model.matrix(frame), threads=1)
        parts.append(pd.DataFrame({"account_id": snapshot["account_id"], "product": product,
                                   "segment": snapshot["segment"], "p": p}))
    pairs = pd.concat(parts, ignore_index=True)
    pairs = pairs[[prod not in held.get(a, ()) for a, prod in
                   zip(pairs["account_id"], pairs["product"], strict=True)]]
    labels = make_labels("cross-sell", tables, day, 90)
    both = pairs.merge(labels, on=["account_id", "product"])
    both["exposure"] = ValueModel.from_meta(model.meta).per_row(both["product"].to_numpy())
    return both


def test_cross_sell_realised_performance_equals_a_direct_computation(monitored):
    """Per product and pooled over products, a matured run's cross-sell rows are training's
    metrics of the pairs the run scored against the cross-sell labels."""
    from serving.history import ScoreHistory, history_dir
    from training.metrics import evaluate

    settings, result = monitored
    day = MATURED[1]
    both = _direct_cross_sell_pairs(settings, day)
    run = ScoreHistory(history_dir(settings.data_dir)).read(day).set_index("account_id")
    best = both.groupby("account_id")["p"].max()
    recorded = run["next_best_product_probability"].reindex(best.index)
    assert np.abs(best - recorded).max() < 1e-9  # the pairs are the ones the run scored

    def direct(frame: pd.DataFrame) -> dict:
        return evaluate(frame["label"].to_numpy(), frame["p"].to_numpy(),
                        value=frame["value"].clip(lower=0).to_numpy(),
                        exposure=frame["exposure"].to_numpy())

    for product in (None, *PRODUCTS):
        part = both if product is None else both[both["product"] == product]
        row = _row(result, day, "cross-sell", product)
        assert row["matured"] is True and row["labelled"] == row["pairs"] == len(part)
        assert row["accounts"] == part["account_id"].nunique()
        assert row["positives"] == int(part["label"].sum())
        if part["label"].nunique() < 2:
            assert row["roc_auc"] is None and "single class" in row["realised_note"]
            continue
        expected = direct(part)
        for key, theirs in (("roc_auc", "roc_auc"), ("lift_at_10", "lift_at_10"),
                            ("ece", "ece"), ("revenue_capture_at_10", "value_capture_at_10")):
            assert row[key] == pytest.approx(expected[theirs], abs=1e-12), (product, key)
        low, high = row["intervals"]["roc_auc"]
        assert low <= row["roc_auc"] <= high
        assert sum(b["accounts"] for b in row["calibration_curve"]) == len(part)
    pooled = _row(result, day, "cross-sell")
    for segment in pooled["segments"]:
        part = both[both["segment"] == segment["segment"]]
        assert segment["labelled"] == len(part)
        if segment.get("roc_auc") is not None:
            assert segment["roc_auc"] == pytest.approx(direct(part)["roc_auc"], abs=1e-12)


def test_cross_sell_runs_not_matured_have_the_estimate_per_product_and_pooled(monitored):
    settings, result = monitored
    both = _direct_cross_sell_pairs(settings, MATURED[1])  # matured: same rule of pairs
    assert _row(result, MATURED[1], "cross-sell")["estimated_roc_auc"] == pytest.approx(
        perf.expected_roc_auc(both["p"].to_numpy()), abs=1e-12)
    for product in (None, *PRODUCTS):
        row = _row(result, PENDING, "cross-sell", product)
        assert row["matured"] is False and row["roc_auc"] is None and row["ece"] is None
        assert 0.5 <= row["estimated_roc_auc"] <= 1 and row["estimated_roc_auc_sd"] > 0
        assert row["matures_on"] == "2025-06-30"


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
    each_task = [("churn", None), ("upsell", None), ("cross-sell", None),
                 *[("cross-sell", p) for p in PRODUCTS]]
    assert [(r["task"], r.get("product")) for r in result["score_drift"]["vs_training"]] == \
        each_task
    assert [(r["as_of"], r["task"], r.get("product"))
            for r in result["score_drift"]["vs_previous"]] == [
        (d.isoformat(), *t) for d in (*MATURED, PENDING) for t in each_task]
    assert [r["as_of"] for r in result["score_drift"]["cross_sell_offers"]] == [
        "training window", *[d.isoformat() for d in (*MATURED, PENDING)], "2025-05-01"]
    assert all(r["likely"] + r["unlikely"] + r["none"] == pytest.approx(1)
               for r in result["score_drift"]["cross_sell_offers"])
    assert all({"as_of", "task", "matured", "roc_auc", "estimated_roc_auc", "ece"} <= set(r)
               for r in result["performance"])
    assert [(r["as_of"], r["task"], r.get("product")) for r in result["performance"]] == [
        (d.isoformat(), *t) for d in (*MATURED, PENDING) for t in each_task]
    assert all("product" not in r for r in result["performance"] if r["task"] != "cross-sell")
    assert set(result["models"]) == {"churn", "upsell", "cross-sell"}
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
    pooled = _row(printed, MATURED[1], "cross-sell")["estimated_roc_auc"]
    assert ('propensity_monitor_roc_auc{as_of="2025-01-01",kind="estimated",'
            f'task="cross-sell"}} {pooled}') in metrics
    one = _row(printed, MATURED[1], "cross-sell", "automation")["estimated_roc_auc"]
    assert ('propensity_monitor_product_roc_auc{as_of="2025-01-01",kind="estimated",'
            f'product="automation",task="cross-sell"}} {one}') in metrics
    psi = next(r for r in printed["score_drift"]["vs_training"]
               if r.get("product") == "analytics")["psi"]
    assert (f'propensity_score_psi_product{{product="analytics",task="cross-sell"}} {psi}'
            in metrics)
    assert "cross-sell" in printed["triggers"]
    assert "cross-sell: ROC AUC per product and run" not in page  # titles are in the PNGs
    assert "<th>product</th>" in page and "Cross-sell per product" in page


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


def test_a_history_without_cross_sell_says_so_and_monitors_the_rest(served_data, tmp_path):
    """Runs scored without a cross-sell model (none was served then) have no cross-sell rows
    and a note each; today's cross-sell model still gets its score drift. Without a
    cross-sell model at all, one note says it is not monitored."""
    from features.store import FeatureStore
    from serving.monitoring.monitor import monitor

    data = _copy(served_data, tmp_path)
    absent = {"cross-sell": str(tmp_path / "no-such-model")}
    _history(ServingSettings(data_dir=data, model_uris=absent), [MATURED[1]])
    _history(ServingSettings(data_dir=data), [PENDING])
    store = FeatureStore(ServingSettings(data_dir=data).features_dir)
    shutil.rmtree(store.path(PENDING))  # the run's snapshot has left the store since
    result = monitor(ServingSettings(data_dir=data, auth_enabled=False))
    assert result["notes"] == [
        "the run of 2025-01-01 scored no cross-sell (no cross-sell model then): no "
        "cross-sell drift or performance for it",
        f"the run of 2025-04-01: its snapshot is no longer in {store.root}, so its cross-sell "
        "pairs cannot be scored again (`propensity features build --as-of 2025-04-01`)"]
    assert {r["task"] for r in result["performance"]} == {"churn", "upsell"}
    assert _row(result, MATURED[1], "churn")["roc_auc"] is not None
    assert "cross-sell" in {r["task"] for r in result["score_drift"]["vs_training"]}
    assert {r["task"] for r in result["score_drift"]["vs_previous"]} == {"churn", "upsell"}

    without = monitor(ServingSettings(data_dir=data, auth_enabled=False, model_uris=absent))
    assert without["notes"] == ["no cross-sell model is served: cross-sell is not monitored "
                                "(train one with `propensity train cross-sell`)"]
    assert set(without["models"]) == {"churn", "upsell"}
    assert "cross-sell" not in {r["task"] for r in without["score_drift"]["vs_training"]}
    assert without["score_drift"]["cross_sell_offers"] == []


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


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 6)), min_size=2, max_size=60),
       st.integers(0, 2**32 - 1))
@settings(max_examples=100, deadline=None)
def test_roc_auc_is_sklearns_also_on_a_resample_ranked_by_levels(pairs, seed):
    """The Mann-Whitney AUC (ties a half) equals sklearn's on every input with both classes,
    and so does the bootstrap's rank-by-levels path on a resample."""
    from sklearn.metrics import roc_auc_score

    y = np.array([a for a, _ in pairs], dtype=float)
    p = np.array([b for _, b in pairs], dtype=float) / 6
    if 0 < y.sum() < len(y):
        assert perf.roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    else:
        assert np.isnan(perf.roc_auc(y, p))
    rows = np.random.default_rng(seed).integers(0, len(y), len(y))
    levels = np.unique(p, return_inverse=True)[1]
    if 0 < y[rows].sum() < len(rows):
        assert perf.roc_auc(y[rows], p[rows], levels[rows]) == pytest.approx(
            roc_auc_score(y[rows], p[rows]), abs=1e-12)
