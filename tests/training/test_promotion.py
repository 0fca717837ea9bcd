"""Champion / challenger: the gate's rule, and a person's overrule through the registry."""

from __future__ import annotations

import pytest

from features.tracking_store import embedded_uri
from training.tasks import CHALLENGER, CHAMPION, registered_name
from training.tracking import champion_version, configure, decide, list_versions, promote
from training.uncertainty import Interval


def test_first_model_becomes_champion():
    assert decide({"roc_auc": 0.7, "ece": 0.05}, None, 0.01).alias == CHAMPION


def test_better_auc_and_calibration_within_margin_is_promoted():
    d = decide({"roc_auc": 0.81, "ece": 0.018}, {"roc_auc": 0.80, "ece": 0.010}, 0.01)
    assert d.alias == CHAMPION
    assert "ROC AUC +0.0100" in d.reason


def test_worse_auc_is_a_challenger():
    d = decide({"roc_auc": 0.79, "ece": 0.001}, {"roc_auc": 0.80, "ece": 0.02}, 0.01)
    assert d.alias == CHALLENGER
    assert "does not beat" in d.reason


def test_better_auc_but_much_worse_calibration_is_a_challenger():
    d = decide({"roc_auc": 0.85, "ece": 0.05}, {"roc_auc": 0.80, "ece": 0.02}, 0.01)
    assert d.alias == CHALLENGER
    assert "ECE" in d.reason


def test_equal_auc_is_not_promoted():
    assert decide({"roc_auc": 0.8, "ece": 0.0}, {"roc_auc": 0.8, "ece": 0.0}, 0.01).alias \
        == CHALLENGER


# The gate on paired differences (training.uncertainty.Interval: point, lower, upper end).
GOOD = {"roc_auc": 0.80, "ece": 0.010}


def test_a_model_that_clearly_loses_to_its_own_baseline_is_not_promoted():
    lost = {"logistic": Interval(-0.018, -0.030, -0.006), "health_score": Interval(0.1, 0.05, 0.2)}
    for champion in (None, GOOD):
        d = decide(GOOD, champion, 0.01, versus_baselines=lost,
                   versus_champion=None if champion is None else Interval(0.02, 0.01, 0.03))
        assert d.alias == CHALLENGER
        assert d.reason.startswith("loses to its own logistic baseline: ROC AUC -0.0180 "
                                   "[-0.0300, -0.0060]")
        assert "propensity models promote" in d.reason


def test_a_model_not_clearly_below_its_baselines_is_promoted():
    unclear = {"logistic": Interval(-0.018, -0.040, 0.001)}  # the interval reaches above 0
    assert decide(GOOD, None, 0.01, versus_baselines=unclear).alias == CHAMPION


def test_not_worse_than_the_champion_by_the_margin_is_promoted():
    # slightly lower point, but the lower end (-0.008) stays above -0.01: promoted
    d = decide({"roc_auc": 0.798, "ece": 0.012}, GOOD, 0.01,
               versus_champion=Interval(-0.002, -0.008, 0.004), auc_margin=0.01)
    assert d.alias == CHAMPION
    assert d.reason == ("ROC AUC vs the champion -0.0020 [-0.0080, +0.0040] (not worse by more "
                        "than 0.01), ECE change +0.0020")


def test_possibly_worse_than_the_champion_by_more_than_the_margin_is_a_challenger():
    # a higher point, but the interval allows a loss of 0.012 > 0.01: not promoted
    d = decide({"roc_auc": 0.81, "ece": 0.010}, GOOD, 0.01,
               versus_champion=Interval(0.01, -0.012, 0.03), auc_margin=0.01)
    assert d.alias == CHALLENGER
    assert d.reason == ("ROC AUC vs the champion +0.0100 [-0.0120, +0.0300] on the same rows: "
                        "may be worse by more than 0.01")
    at_margin = decide(GOOD, GOOD, 0.01, versus_champion=Interval(0.0, -0.01, 0.01),
                       auc_margin=0.01)
    assert at_margin.alias == CHALLENGER  # the lower end must be above -margin


def test_paired_gate_still_refuses_worse_calibration():
    d = decide({"roc_auc": 0.85, "ece": 0.05}, {"roc_auc": 0.80, "ece": 0.02}, 0.01,
               versus_champion=Interval(0.05, 0.03, 0.07))
    assert d.alias == CHALLENGER
    assert d.reason == "ECE 0.0500 is worse than the champion's 0.0200 by more than 0.01"


@pytest.fixture()
def registry(mlflow_data_dir):
    from mlflow import MlflowClient

    uri = configure(embedded_uri(mlflow_data_dir / "mlflow"), mlflow_data_dir / "mlflow")
    assert uri == f"sqlite:///{mlflow_data_dir.resolve() / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient()
    name = registered_name("churn")
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, source=(mlflow_data_dir / "model").as_uri())
    return client, name


def test_manual_promotion_moves_the_aliases(registry):
    client, name = registry
    client.set_registered_model_alias(name, CHAMPION, "1")
    promote(name, 3)
    assert str(champion_version(name).version) == "3"
    assert str(client.get_model_version_by_alias(name, CHALLENGER).version) == "1"
    listed = {r["version"]: r["aliases"] for r in list_versions([name])}
    assert listed == {3: [CHAMPION], 2: [], 1: [CHALLENGER]}


def test_promoting_a_missing_version_fails_clearly(registry):
    from mlflow.exceptions import MlflowException

    _, name = registry
    with pytest.raises(MlflowException):
        promote(name, 9)
    assert champion_version(name) is None


def test_promotion_from_the_command_line_is_audited(registry, mlflow_data_dir):
    from typer.testing import CliRunner

    from features import audit
    from propensity_cli import app

    _, name = registry
    runner = CliRunner()
    ok = runner.invoke(app, ["models", "promote", name, "2", "--data-dir", str(mlflow_data_dir)])
    assert ok.exit_code == 0, ok.output
    missing = runner.invoke(app, ["models", "promote", name, "9", "--data-dir",
                                  str(mlflow_data_dir)])
    assert missing.exit_code == 1
    records = audit.read(mlflow_data_dir / "audit.log")
    assert [(r["action"], r["outcome"], r["key_name"], r["actor"]) for r in records] == [
        ("model_promote", "ok", None, audit.cli_actor()),
        ("model_promote", "failed", None, audit.cli_actor())]
    assert records[0]["detail"] == f"{name} v2 is champion"
    assert records[1]["detail"].startswith(f"{name} v9: ")
    assert str(champion_version(name).version) == "2"
