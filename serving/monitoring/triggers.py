"""Retraining triggers: from a monitor result, whether each task's champion should be replaced
and why. The composition root acts on the decision (training a challenger and passing it
through the champion/challenger gate): serving may not import training.

A task is retrained when any of these holds:
- age: the champion was registered more than ``retrain_max_age_days`` before the date (a
  recalibrated champion: its trees, ``trees_registered_at``; recalibrating does not make a
  model young);
- drift: features on alert (overall or in a segment) carry at least
  ``retrain_drift_importance`` of the model's importance;
- performance: the newest matured run's realised ROC AUC, or the newest run's estimated one,
  is below the model's test AUC by more than ``retrain_auc_margin``, beyond its own error
  (the realised AUC's whole 95 % interval, the estimate plus two of its standard deviations):
  a small book's noise alone does not retrain.
Only recalibration is advised when none of these holds but the newest matured run's ECE is
above the model's test ECE by more than ``recalibrate_ece_margin``.
Cross-sell is decided like the others on its rows pooled over products (the rows with a
``product`` are per product, for people to read): its test metrics are pooled too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime


@dataclass(frozen=True)
class Decision:
    task: str
    retrain: bool
    recalibrate: bool
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def decide(result: dict, settings, task: str) -> Decision:
    """The decision for ``task`` from a monitor ``result`` (``serving.monitoring.monitor``)."""
    model = result["models"][task]
    as_of = date.fromisoformat(result["as_of"])
    reasons = []
    registered = model.get("registered_at")
    trees = model.get("trees_registered_at")  # a recalibrated version: its trees' registration
    if trees or registered:
        age = (as_of - datetime.fromisoformat(trees or registered).date()).days
        what = (f"the trees of the champion v{model['version']} (recalibrated since) were"
                if trees else f"the champion v{model['version']} was")
        if age > settings.retrain_max_age_days:
            reasons.append(f"age: {what} registered {age} days before {as_of} (limit "
                           f"{settings.retrain_max_age_days})")
    drifting = [r for r in result["drift"] if r["alert"] or r["segments_alerting"]]
    weight = sum(r["importance"] for r in drifting)  # importance: the largest of the models'
    if drifting and weight >= settings.retrain_drift_importance:
        names = ", ".join(r["feature"] for r in sorted(drifting, key=lambda r: -r["importance"]))
        reasons.append(f"drift: features on alert carry {weight:.0%} of the importance "
                       f"(limit {settings.retrain_drift_importance:.0%}): {names}")
    test = model.get("test_metrics") or {}
    runs = sorted((r for r in result["performance"]
                   if r["task"] == task and r.get("product") is None),  # cross-sell: pooled
                  key=lambda r: r["as_of"])
    matured = [r for r in runs if r.get("roc_auc") is not None]
    floor = test.get("roc_auc", 0.0) - settings.retrain_auc_margin
    if matured:
        last = matured[-1]
        high = (last.get("intervals") or {}).get("roc_auc", [last["roc_auc"]] * 2)[1]
        if high < floor:
            reasons.append(f"performance: realised ROC AUC {last['roc_auc']:.3f} (95% up to "
                           f"{high:.3f}) of the run of {last['as_of']} is below the test AUC "
                           f"{test['roc_auc']:.3f} - {settings.retrain_auc_margin}")
    if runs and runs[-1].get("estimated_roc_auc") is not None:
        last = runs[-1]
        high = last["estimated_roc_auc"] + 2 * (last.get("estimated_roc_auc_sd") or 0.0)
        if high < floor:
            reasons.append(f"performance: estimated ROC AUC {last['estimated_roc_auc']:.3f} "
                           f"(+ 2 sd: {high:.3f}) of the run of {last['as_of']} is below the "
                           f"test AUC {test['roc_auc']:.3f} - {settings.retrain_auc_margin}")
    recalibrate = False
    if not reasons and matured and matured[-1].get("ece") is not None and "ece" in test \
            and matured[-1]["ece"] > test["ece"] + settings.recalibrate_ece_margin:
        recalibrate = True
        reasons.append(f"calibration: ECE {matured[-1]['ece']:.3f} of the run of "
                       f"{matured[-1]['as_of']} is above the test ECE {test['ece']:.3f} + "
                       f"{settings.recalibrate_ece_margin} while the AUC holds")
    retrain = bool(reasons) and not recalibrate
    return Decision(task, retrain and settings.retrain_enabled,
                    recalibrate and settings.retrain_enabled, reasons)


def decide_all(result: dict, settings) -> dict[str, Decision]:
    return {task: decide(result, settings, task) for task in result["models"]}
