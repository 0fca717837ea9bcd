"""Training as a data scientist runs it: CLI in, registered model out, loaded back by alias."""

from __future__ import annotations

import json
import re
import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.store import FeatureStore
from propensity_cli import app

pytestmark = pytest.mark.slow
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def book(tmp_path_factory, mlflow_template_db):
    data = tmp_path_factory.mktemp("book")
    (data / "mlflow").mkdir()
    (data / "mlflow" / "mlflow.db").write_bytes(mlflow_template_db.read_bytes())
    for args in (
        ["data", "generate", "--accounts", "300", "--months", "16", "--start", "2024-01-01",
         "--seed", "5"],
        ["features", "build", "--from", "2024-02-01", "--to", "2025-05-01"],
    ):
        result = run(*args, "--data-dir", str(data))
        assert result.exit_code == 0, (args, result.output)
    return data


def train_json(data, task: str = "churn") -> dict:
    result = run("train", task, "--json", "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


def test_train_registers_and_serves_by_alias_and_is_reproducible(book):
    first = train_json(book)
    assert first["registered_model"] == "propensity-churn"
    assert first["version"] == 1 and first["alias"] == "champion"
    for name in ("roc_auc", "pr_auc", "brier", "ece", "lift_at_10", "value_capture_at_10"):
        assert 0 <= first["metrics"][name] <= 100
    # the generated book has the customer's own health score too
    assert set(first["baselines"]) == {"logistic", "health_score", "customer_score"}
    # The composition root hands training the simulator's oracle: generated data has a truth.
    assert 0.5 < first["oracle"]["roc_auc"] <= 1

    model = mlflow.pyfunc.load_model("models:/propensity-churn@champion")
    store = FeatureStore(book / "features")
    latest = store.read(store.dates()[-1])
    scored = model.predict(latest, params={"reasons": 3})
    assert len(scored) == len(latest)
    assert scored["probability"].between(0, 1).all()
    reasons = json.loads(scored["reasons"].iloc[0])  # the API's rule: 3 strongest each way
    assert set(reasons) == {"raising", "lowering"}
    assert all(len(found) == 3 for found in reasons.values())
    assert all(r["contribution"] > 0 for r in reasons["raising"])
    assert all(r["contribution"] < 0 for r in reasons["lowering"])

    # Intervals over accounts, and the model paired with each baseline and the oracle.
    intervals = first["intervals"]
    auc = intervals["metrics"]["model"]["roc_auc"]
    assert auc["value"] == pytest.approx(first["metrics"]["roc_auc"], abs=1e-12)
    assert auc["lo"] < auc["value"] < auc["hi"]
    assert set(intervals["differences"]) == {"model - logistic", "model - health_score",
                                             "model - customer_score", "model - oracle"}
    run_metrics = mlflow.get_run(first["run_id"]).data.metrics
    assert run_metrics["test_roc_auc_lo"] == auc["lo"]
    assert run_metrics["diff_logistic_roc_auc"] == pytest.approx(
        first["metrics"]["roc_auc"] - first["baselines"]["logistic"]["roc_auc"])

    # Same data, settings, code and seed: the same metrics, and the version is reused.
    second = train_json(book)
    assert second["metrics"] == first["metrics"]
    assert second["selection"] == first["selection"]  # the same choice, folds and scores
    assert second["intervals"]["metrics"]["model"] == intervals["metrics"]["model"]
    assert second["intervals"]["differences"]["model - logistic"] == (
        intervals["differences"]["model - logistic"])
    # the champion (v1) is this very model: paired with it, exactly no difference
    assert second["intervals"]["differences"]["model - champion"]["roc_auc"] == {
        "value": 0.0, "lo": 0.0, "hi": 0.0}
    assert (second["version"], second["alias"], second["reused"]) == (1, "champion", True)
    assert second["fingerprint"] == first["fingerprint"]
    assert "identical retrain of v1" in second["reason"]
    assert second["run_id"] != first["run_id"]  # the run says so
    assert mlflow.get_run(second["run_id"]).data.tags["reused_version"] == "1"


def test_changed_data_registers_a_new_version_compared_with_the_champion(book, tmp_path):
    """One snapshot date less: other training rows, a new version, judged against the champion
    on the same test rows (the paired difference); a person can still overrule the gate."""
    import shutil

    data = tmp_path / "book"
    shutil.copytree(book, data, symlinks=True)
    first = train_json(data)
    store = FeatureStore(data / "features")
    (data / "features" / f"as_of={store.dates()[0]}").unlink()  # the oldest snapshot's link
    second = train_json(data)
    assert second["version"] == first["version"] + 1 and not second["reused"]
    assert second["fingerprint"] != first["fingerprint"]
    assert "model - champion" in second["intervals"]["differences"]
    assert "vs the champion" in second["reason"]

    result = run("models", "promote", "propensity-churn", str(second["version"]),
                 "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    listed = json.loads(run("models", "list", "--json", "--data-dir", str(data)).stdout)
    aliases = {r["version"]: r["aliases"] for r in listed if r["name"] == "propensity-churn"}
    assert aliases[second["version"]] == ["champion"]


def test_backtest_pools_cutoffs_that_train_on_more_dates(book):
    result = run("train", "backtest", "churn", "--cutoffs", "2", "--json", "--data-dir",
                 str(book))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    cutoffs = report["cutoffs"]
    assert len(cutoffs) == 2
    assert cutoffs[0]["train_to"] < cutoffs[1]["train_to"]  # the training set grew
    assert cutoffs[0]["test"] < cutoffs[1]["test"]
    pooled = report["pooled"]
    assert pooled["rows"] == sum(c["rows_test"] for c in cutoffs)
    assert pooled["positives"] == sum(c["positives"] for c in cutoffs)
    assert set(pooled["metrics"]) == {"model", "logistic", "health_score", "customer_score",
                                      "oracle"}
    for cand, metrics in pooled["metrics"].items():
        auc = pooled["intervals"][cand]["roc_auc"]
        assert auc["value"] == pytest.approx(metrics["roc_auc"])
        assert auc["lo"] <= auc["value"] <= auc["hi"]
    best = report["best_baseline"]
    assert best in ("logistic", "health_score", "customer_score")
    assert report["versus_best_baseline"] == pooled["differences"][f"model - {best}"]["roc_auc"]
    assert best in report["verdict"]
    text = run("train", "backtest", "churn", "--cutoffs", "2", "--data-dir", str(book))
    assert "verdict:" in text.output and "pooled over 2 cut-offs" in text.output


def test_the_customer_score_is_compared_with_the_model_on_the_same_rows(book, tmp_path,
                                                                         monkeypatch):
    result = run("train", "churn", "--data-dir", str(book))
    assert result.exit_code == 0, result.output
    assert "customer_score" in result.output  # a column of the table, and its coverage line
    paired = [line for line in result.output.splitlines()
              if line.startswith("paired model - customer_score: roc_auc ")]
    assert len(paired) == 1  # the model paired with the customer's score on the same rows
    got = train_json(book)
    model, own = got["metrics"], got["baselines"]["customer_score"]
    assert own["n"] == model["n"] == got["rows"]["test"]  # the model's own test rows
    for name in ("roc_auc", "lift_at_10", "ece", "value_capture_at_10"):
        assert name in own
    assert 0.8 < own["coverage"] < 1.0  # the generator scores 90 % of the accounts
    assert own["roc_auc"] > 0.6  # health + noise of a known size: informative

    # The same book with a customer score that is pure noise, for every account and month
    # (no unscored block whose rate differs by chance on ~25 test churns): about chance
    noisy = tmp_path / "noisy"
    shutil.copytree(book, noisy)
    truth = pd.read_parquet(noisy / "truth" / "account_month_truth.parquet")
    pd.DataFrame({
        "account_id": truth["account_id"],
        "scored_at": pd.to_datetime(truth["month"]) + pd.Timedelta(days=27),
        "score": np.random.default_rng(0).uniform(0, 100, len(truth)).round(1),
        "label": None,
    }).to_parquet(noisy / "raw" / "health_scores.parquet", index=False)
    noise = train_json(noisy)["baselines"]["customer_score"]
    assert noise["coverage"] == 1.0
    assert abs(noise["roc_auc"] - 0.5) < 0.12
    assert noise["roc_auc"] < own["roc_auc"] - 0.1

    # As a feature too: the setting adds the family to the snapshots, training reads it back
    monkeypatch.setenv("PROPENSITY_CUSTOMER_SCORE_AS_FEATURE", "true")
    result = run("features", "build", "--from", "2024-02-01", "--to", "2025-05-01",
                 "--data-dir", str(noisy))
    assert result.exit_code == 0, result.output
    store = FeatureStore(noisy / "features")
    assert "customer_health_score" in store.columns(store.dates()[-1])
    monkeypatch.delenv("PROPENSITY_CUSTOMER_SCORE_AS_FEATURE")  # the stored catalogue decides
    assert train_json(noisy)["baselines"]["customer_score"]["roc_auc"] == noise["roc_auc"]


def test_upsell_and_cross_sell_train(book):
    for task in ("upsell", "cross-sell"):
        out = train_json(book, task)
        assert out["registered_model"] == f"propensity-{task}"
        assert out["metrics"]["n"] > 0


def test_the_model_is_chosen_by_cross_validation_and_refit_on_all_training_dates(book):
    result = run("train", "churn", "--data-dir", str(book))
    assert result.exit_code == 0, result.output
    assert "model choice: " in result.output and "(chosen)" in result.output
    run_id = re.findall(r"run ([0-9a-f]{32})", result.output)[-1]
    selection = mlflow.artifacts.load_dict(f"runs:/{run_id}/selection.json")
    logged = mlflow.get_run(run_id).data
    horizon = pd.Timedelta(days=90)
    for fold in selection["folds"]:
        assert pd.Timestamp(fold["validation"][0]) - pd.Timestamp(fold["train_to"]) >= horizon
    # every training date is in the refit: up to the horizon before the first test date
    test_from = pd.Timestamp(logged.params["window_test"].split(",")[0])
    assert pd.Timestamp(logged.params["window_train_to"]) + horizon <= test_from
    assert pd.Timestamp(logged.params["window_train_to"]) + pd.DateOffset(months=1) + horizon \
        > test_from
    last = selection["folds"][-1]
    assert int(logged.params["rows_train"]) > last["rows_train"] + last["rows_validation"]
    # calibrated on the out-of-fold predictions: every validation block's rows
    calibration = mlflow.artifacts.load_dict(f"runs:/{run_id}/calibration.json")
    assert calibration["n"] == sum(f["rows_validation"] for f in selection["folds"])
    assert logged.params["model_kind"] == selection["chosen"]
    assert logged.metrics[f"cv_{selection['chosen']}_log_loss"] == pytest.approx(
        selection["candidates"][selection["chosen"]]["log_loss"])


def test_no_snapshots_is_a_clear_error(tmp_path):
    result = run("data", "generate", "--accounts", "20", "--months", "3", "--start",
                 "2024-01-01", "--data-dir", str(tmp_path))
    assert result.exit_code == 0
    result = run("train", "churn", "--data-dir", str(tmp_path))
    assert result.exit_code == 1
    assert "no feature snapshots" in result.output
    assert not (tmp_path / "mlflow").exists()


def test_a_snapshot_of_another_catalogue_is_refused(tmp_path):
    """A snapshot stamped by another feature catalogue: exit 1 naming its date, nothing logged."""
    import pyarrow as pa

    for args in (["data", "generate", "--accounts", "30", "--months", "9", "--start",
                  "2024-01-01"], ["features", "build", "--from", "2024-02-01", "--to",
                                  "2024-09-01"]):
        assert run(*args, "--data-dir", str(tmp_path)).exit_code == 0
    store = FeatureStore(tmp_path / "features")
    stale = store.dates()[1]
    version = store.catalogue_version(stale)
    store.write(stale, pa.Table.from_pandas(store.read(stale), preserve_index=False),
                "0123456789ab")
    result = run("train", "churn", "--data-dir", str(tmp_path))
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert (f"1 feature snapshot(s) in {tmp_path / 'features'} were built by another feature "
            f"catalogue than this code's ({version}): as_of={stale} (0123456789ab); rebuild "
            "them with `propensity features build`") in message
    assert "Traceback" not in result.output
    assert not (tmp_path / "mlflow").exists()


@pytest.fixture()
def table(tmp_path) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    usage = rng.normal(size=n)
    frame = pd.DataFrame({
        "account": [f"A{i}" for i in range(n)], "usage": usage,
        "plan": rng.choice(["basic", "pro"], n),
        "churned": np.where(rng.random(n) < 1 / (1 + np.exp(2 * usage + 1)), "yes", "no"),
    })
    frame.to_csv(tmp_path / "accounts.csv", index=False)
    return frame


def test_tabular_registers_a_model_that_loads_back(table, mlflow_data_dir):
    path = mlflow_data_dir / "accounts.csv"
    table.to_csv(path, index=False)
    result = run("train", "tabular", "--table", str(path), "--label", "churned", "--id",
                 "account", "--json", "--data-dir", str(mlflow_data_dir))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{"):])
    assert out["registered_model"] == "propensity-tabular-accounts"
    assert out["alias"] == "champion"
    assert out["metrics"]["roc_auc"] > 0.7
    model = mlflow.pyfunc.load_model("models:/propensity-tabular-accounts@champion")
    p = model.predict(table.drop(columns=["churned"]).head(10))["probability"]
    assert p.between(0, 1).all()


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns=["churned"]), "churned"),
    (lambda f: f.assign(churned="no"), "single class"),
    (lambda f: f.head(0), "empty"),
])
def test_tabular_bad_input_registers_nothing(table, mlflow_data_dir, change, message):
    path = mlflow_data_dir / "bad.csv"
    change(table).to_csv(path, index=False)
    result = run("train", "tabular", "--table", str(path), "--label", "churned",
                 "--data-dir", str(mlflow_data_dir))
    assert result.exit_code == 1
    assert message in result.output.lower() or message in result.output
    listed = json.loads(run("models", "list", "--json", "--data-dir",
                            str(mlflow_data_dir)).stdout)
    assert listed == []


def test_a_test_window_of_one_class_fails_before_any_fit(book, monkeypatch):
    """The test rows are read again after the fits (not held through them), but their labels
    are checked before the first fit: bad labels cost no training time."""
    from training import selection
    from training import train as training

    real = training.task_dataset
    monkeypatch.setattr(training, "task_dataset",
                        lambda *args, **kwargs: real(*args, **kwargs).assign(label=0))

    def no_fit(*args, **kwargs):
        raise AssertionError("a model was fitted before the test labels were checked")

    monkeypatch.setattr(selection, "select_and_refit", no_fit)
    result = run("train", "churn", "--data-dir", str(book))
    assert result.exit_code != 0
    assert "test set has a single class (label = 0 for all" in result.output
