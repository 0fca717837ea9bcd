"""The daily run on a calibration-only trigger: the monitor's decision becomes a recalibration
(not a retrain) in the run's record, the retrain step calls the recalibration hook and records
which and why, and the switches turn it off like retraining (fake hooks: the real ones are in
tests/serving/test_recalibration.py)."""

from __future__ import annotations

from datetime import date

import pytest

from serving.daily.steps import RunContext, StepFailed, action_of, monitor, retrain
from serving.settings import ServingSettings

DAY = date(2025, 4, 17)
ECE_ONLY = "calibration: ECE 0.090 of the run of 2025-01-01 is above the test ECE 0.020 + 0.03"
DRIFT = "drift: features on alert carry 40% of the importance (limit 20%): seats_used"
#: The monitor's decisions (serving.monitoring.triggers.Decision.as_dict): churn's calibration
#: alone has drifted, upsell's inputs have, cross-sell is fine.
DECISIONS = {
    "churn": {"task": "churn", "retrain": False, "recalibrate": True, "reasons": [ECE_ONLY]},
    "upsell": {"task": "upsell", "retrain": True, "recalibrate": False, "reasons": [DRIFT]},
    "cross-sell": {"task": "cross-sell", "retrain": False, "recalibrate": False,
                   "reasons": []},
}


class Hooks:
    """Fake retraining and recalibration that note what they were asked to do."""

    def __init__(self):
        self.calls: list[tuple[str, str, list[str]]] = []

    def retrain(self, settings, task, reasons):
        self.calls.append(("retrain", task, reasons))
        return f"{task}: v4 -> champion"

    def recalibrate(self, settings, task, reasons):
        self.calls.append(("recalibrate", task, reasons))
        return f"{task}: recalibrated (v3 -> v5 champion)"


def monitored(tmp_path, monkeypatch, hooks: Hooks | None, **options) -> RunContext:
    """A run context after its monitor step decided ``DECISIONS`` (the monitor itself faked)."""
    import serving.monitoring.monitor as monitoring

    monkeypatch.setattr(monitoring, "monitor_and_save", lambda settings, as_of: {
        "as_of": str(as_of), "drift": [{"feature": "seats_used", "alert": True}],
        "triggers": DECISIONS})
    settings = ServingSettings(data_dir=tmp_path, **options.pop("settings", {}))
    ctx = RunContext(settings, DAY, retrain=hooks and hooks.retrain,
                     recalibrate=hooks and hooks.recalibrate, **options)
    outcome = monitor(ctx)
    assert outcome.status == "done"
    ctx.records["monitor"] = outcome.record
    return ctx


def test_the_monitor_step_records_which_action_each_trigger_asks_for(tmp_path, monkeypatch):
    ctx = monitored(tmp_path, monkeypatch, Hooks())
    record = ctx.records["monitor"]["outputs"]["triggers"]
    assert record == {
        "churn": {"retrain": True, "action": "recalibrate", "reasons": [ECE_ONLY]},
        "upsell": {"retrain": True, "action": "retrain", "reasons": [DRIFT]},
        "cross-sell": {"retrain": False, "action": "retrain", "reasons": []},
    }
    assert monitor(ctx).detail == ("1 feature(s) on drift alert; retraining due for churn "
                                   "(recalibrate), upsell (retrain)")


def test_an_ece_only_trigger_recalibrates_and_a_drift_trigger_retrains(tmp_path, monkeypatch):
    hooks = Hooks()
    ctx = monitored(tmp_path, monkeypatch, hooks)
    outcome = retrain(ctx)
    assert hooks.calls == [("recalibrate", "churn", [ECE_ONLY]), ("retrain", "upsell", [DRIFT])]
    assert outcome.status == "done"
    assert outcome.detail == ("churn: recalibrated (v3 -> v5 champion); upsell: v4 -> champion")
    assert outcome.record["outputs"] == {
        "retrained": ["upsell: v4 -> champion"],
        "recalibrated": ["churn: recalibrated (v3 -> v5 champion)"],
        "why": {"churn": [ECE_ONLY], "upsell": [DRIFT]},
        "actions": {"churn": "recalibrate", "upsell": "retrain"},
    }
    # the same triggers on the same scores: current, nothing redone
    ctx.previous["retrain"] = outcome.record
    ctx.records.pop("retrain", None)
    again = retrain(ctx)
    assert (again.status, again.detail) == ("skipped", "retrained for these triggers already")
    assert len(hooks.calls) == 2


@pytest.mark.parametrize(("options", "switch"), [
    ({"no_retrain": True}, "--no-retrain"),
    ({"settings": {"retrain_enabled": False}}, "retrain_enabled = false"),
])
def test_the_switches_turn_recalibration_off_too(tmp_path, monkeypatch, options, switch):
    hooks = Hooks()
    # the monitor's own decisions say what fired; the switches act in the retrain step
    outcome = retrain(monitored(tmp_path, monkeypatch, hooks, **options))
    assert hooks.calls == []
    assert outcome.status == "skipped"
    assert outcome.detail == (f"retraining is off ({switch}); triggers: churn (recalibration): "
                              f"{ECE_ONLY}; upsell: {DRIFT}")


def test_without_a_recalibration_hook_calibration_drift_is_retrained(tmp_path, monkeypatch):
    hooks = Hooks()
    ctx = monitored(tmp_path, monkeypatch, hooks)
    ctx.recalibrate = None  # e.g. an orchestrator that wires retraining only
    outcome = retrain(ctx)
    assert [c[:2] for c in hooks.calls] == [("retrain", "churn"), ("retrain", "upsell")]
    assert outcome.record["outputs"]["actions"] == {"churn": "retrain", "upsell": "retrain"}


def test_a_failed_recalibration_fails_the_step_naming_it(tmp_path, monkeypatch):
    hooks = Hooks()

    def no_labels(settings, task, reasons):
        raise ValueError("no matured labels to recalibrate on")

    ctx = monitored(tmp_path, monkeypatch, hooks)
    ctx.recalibrate = no_labels
    with pytest.raises(StepFailed, match=r"retraining failed for churn \(recalibration\): no "
                                         r"matured labels to recalibrate on \(done: upsell: v4 "
                                         r"-> champion\)"):
        retrain(ctx)


@pytest.mark.parametrize(("trigger", "action"), [
    ({"retrain": False, "recalibrate": True}, "recalibrate"),  # the monitor's decision
    ({"retrain": True, "recalibrate": True}, "retrain"),  # both: the retrain repairs both
    ({"retrain": True, "reasons": []}, "retrain"),  # a record from before recalibration
    ({"retrain": True, "action": "recalibrate"}, "recalibrate"),  # the step's own record
])
def test_the_action_of_a_trigger(trigger, action):
    assert action_of(trigger) == action


def test_the_composition_root_wires_recalibration_into_the_run(monkeypatch, tmp_path):
    """`propensity run` hands the run both hooks from the composition root."""
    from typer.testing import CliRunner

    import propensity_cli

    seen = {}

    def run_daily(ctx, reporter):
        seen.update(retrain=ctx.retrain, recalibrate=ctx.recalibrate)
        return []

    monkeypatch.setattr("serving.daily.run.run_daily", run_daily)
    result = CliRunner().invoke(propensity_cli.app, ["run", "--as-of", "2025-01-01",
                                                     "--log-format", "json", "--data-dir",
                                                     str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert seen == {"retrain": propensity_cli.retrain_task,
                    "recalibrate": propensity_cli.recalibrate_task}


def test_the_age_trigger_counts_from_the_trees_not_from_a_recalibration():
    from serving.monitoring.triggers import decide

    champion = {"version": "5", "registered_at": "2025-04-28T10:00:00+00:00",
                "test_metrics": {"roc_auc": 0.80, "ece": 0.02}}
    result = {"as_of": "2025-05-01", "models": {"churn": champion}, "drift": [],
              "performance": []}
    settings = ServingSettings(data_dir="unused")
    assert decide(result, settings, "churn").reasons == []  # registered 3 days ago
    champion["trees_registered_at"] = "2025-03-01T00:00:00+00:00"  # recalibrated from older
    d = decide(result, settings, "churn")
    assert d.retrain and d.reasons == [
        "age: the trees of the champion v5 (recalibrated since) were registered 61 days "
        "before 2025-05-01 (limit 30)"]
