"""Recalibration alone: the champion's trees and linear part kept, only its calibrator refitted
on the newest matured labels, registered as a new version through the champion/challenger gate.

When only calibration has drifted (the monitor's ``recalibrate`` trigger: realised ECE up, AUC
holding), refitting the two numbers of a sigmoid (or an isotonic map) costs seconds where a
retrain costs a model choice by cross-validation. The rows and the rule:

- **Which labels.** Snapshot dates whose label window ``[as_of, as_of + H)`` has passed before
  the data's extraction time (``features.labels.label_window_observed``) and that lie at least
  the horizon after the model's last training date (the split's gap: the trees never saw these
  rows, nor any row whose label window overlaps theirs). At least two such dates are needed.
- **Fit and test, by time.** The newest of them is the test block; the calibrator is fitted on
  the older ones with training's own rule (``training.calibration.fit_calibrator``,
  ``method="auto"``: sigmoid unless isotonic wins by more than a standard error). The
  calibrator that is tested is the one registered: nothing is refitted on the test block, as in
  ``training.train``. The two blocks are adjacent dates, not a horizon apart: the calibration
  block's label windows overlap the test block's (waiting a whole horizon more would leave the
  drift unrepaired for a quarter); the trees' rows keep the full gap.
- **The same gate, plus one condition.** The old and the new calibrator score the same test
  rows from the same raw scores; ``training.tracking.decide`` judges the new version against
  the champion (the paired ROC AUC difference's interval and the ECE rule), and a recalibration
  is promoted only when it also lowers both ECE and log loss on the test block. A sigmoid with
  a positive slope keeps the ranking (AUC unchanged); an isotonic map can tie scores apart and
  cost AUC, which the paired interval sees.

The new version's model files are the source version's, byte for byte, except
``calibrator.json`` and ``meta.json`` (whose ``test_metrics`` become the test block's, which the
monitor's calibration trigger compares with, and ``recalibration`` says from what and why, and
``trees_registered_at``: when the trees were registered, which the age trigger counts from).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from features.catalogue import ACCOUNT_ID
from training.settings import TrainingSettings
from training.tasks import CHALLENGER, CHAMPION, registered_name
from training.tracking import Decision
from training.train import TrainingError

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

RECALIBRATED_FROM = "recalibrated_from"  # run and model-version tag: the source version
REASON_TAG = "recalibration_reason"  # run tag: why (the trigger's reasons, or "by hand")
SHOWN = ("roc_auc", "log_loss", "brier", "ece")


class RecalibrationError(TrainingError):
    """Recalibration cannot go on; nothing was registered."""


@dataclass
class Source:
    """The registered version being recalibrated, loaded from the registry."""

    name: str
    version: int
    run_id: str
    artifacts: Path  # the version's artifact files (booster.txt, calibrator.json, ...)
    model: object  # the loaded pyfunc_model.PropensityModel
    meta: dict
    options: dict  # product, renewal_only: the label definition it was trained with
    fingerprint: str
    trees_registered_at: str  # ISO time the trees were first registered (before any recalibration)

    @property
    def calibrator(self) -> dict:
        return self.model.calibrator

    def last_training_date(self) -> date:
        """The last snapshot date the trees (and linear part) were fitted on."""
        window = self.meta.get("window") or {}
        dates = [window.get("train_to"), *(window.get("validation") or "").split(",")]
        found = [date.fromisoformat(d) for d in dates if d]
        if not found:
            raise RecalibrationError(f"{self.name} v{self.version} records no training window "
                                     "(meta['window']): retrain it with `propensity train`")
        return max(found)


@dataclass
class RecalibrationResult:
    task: str
    registered_model: str
    source_version: int
    version: int
    alias: str
    reason: str
    run_id: str
    calibration_dates: list[str]
    test_dates: list[str]
    rows: dict[str, int]
    positives: dict[str, int]
    before: dict[str, float]  # the source version on the test block
    after: dict[str, float]  # the recalibrated version on the same rows
    calibration: dict  # fit_calibrator's report (method, CV log losses)
    versus_source: dict  # paired ROC AUC difference after - before, with its interval
    seconds: float
    fingerprint: str = ""
    reused: bool = False  # an identical recalibration: ``version`` existed, none registered
    why: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def line(self) -> str:
        """One line for the daily run's record."""
        what = (f"identical to v{self.version}" if self.reused
                else f"v{self.source_version} -> v{self.version} {self.alias}")
        return (f"{self.task}: recalibrated ({what}; ECE {self.before['ece']:.4f} -> "
                f"{self.after['ece']:.4f} on {', '.join(self.test_dates)}; {self.reason})")


def matured_blocks(observed: Sequence[date], last_training: date, horizon_days: int
                   ) -> tuple[list[date], list[date]]:
    """(calibration dates, test dates): of the ``observed`` dates (label window passed), those
    at least the horizon after ``last_training``; the newest one tests, the others fit."""
    eligible = sorted(d for d in observed
                      if last_training + timedelta(days=horizon_days) <= d)
    if len(eligible) < 2:
        newest = max(observed) if observed else None
        found = ", ".join(map(str, eligible)) or "none"
        raise RecalibrationError(
            f"no matured labels to recalibrate on: recalibration needs at least 2 snapshot "
            f"dates at least {horizon_days} days after the model's last training date "
            f"{last_training} whose {horizon_days}-day label window has passed before the "
            f"data's extraction time (one to fit the calibrator, the newest to test it); "
            f"found {found} (the newest matured date is {newest or 'none'}). Wait for labels to "
            "mature, or retrain with `propensity train`")
    return eligible[:-1], eligible[-1:]


def gate(before: dict[str, float], after: dict[str, float], versus, *,
         max_ece_increase: float, auc_margin: float) -> Decision:
    """Champion or challenger for a recalibrated version: the gate every version passes
    (``training.tracking.decide`` against the source, the champion, on the same rows), and
    then better calibrated: ECE and log loss both lower on the test block."""
    from training.tracking import decide

    decision = decide(after, before, max_ece_increase, versus_champion=versus,
                      auc_margin=auc_margin)
    if decision.alias != CHAMPION:
        return decision
    change = (f"ECE {before['ece']:.4f} -> {after['ece']:.4f}, log loss "
              f"{before['log_loss']:.4f} -> {after['log_loss']:.4f} on the test block")
    if not (after["ece"] < before["ece"] and after["log_loss"] < before["log_loss"]):
        return Decision(CHALLENGER, f"recalibration does not improve calibration: {change}")
    return Decision(CHAMPION, f"calibration improves: {change}; {decision.reason}")


def raw_scores(model, frame: pd.DataFrame) -> np.ndarray:
    """The model's uncalibrated probabilities, the input of its calibrator (what
    ``PropensityModel.probability_matrix`` computes before calibrating)."""
    x = model.matrix(frame)
    if len(x) == 0:
        return np.empty(0)
    if model.kind == "lightgbm":
        return np.asarray(model.booster.predict(x), dtype="float64")
    return 0.5 * (1.0 + np.tanh(0.5 * model.log_odds_matrix(x)))


def load_source(name: str, folder: Path) -> Source:
    """The champion of ``name``: its artifacts downloaded into ``folder``, the model loaded."""
    import mlflow

    from training.tracking import FINGERPRINT_TAG, champion_version

    found = champion_version(name)
    if found is None:
        raise RecalibrationError(f"{name} has no champion to recalibrate: train one with "
                                 "`propensity train`")
    uri = f"models:/{name}/{found.version}"
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder)))
    model = mlflow.pyfunc.load_model(str(local)).unwrap_python_model()
    params = mlflow.get_run(found.run_id).data.params if found.run_id else {}
    options = {"product": params.get("product"),
               "renewal_only": params.get("renewal_only") == "True"}
    meta = dict(model.meta)
    trees = ((meta.get("recalibration") or {}).get("trees_registered_at")
             or datetime.fromtimestamp(found.creation_timestamp / 1000, UTC).isoformat(
                 timespec="seconds"))
    return Source(name, int(found.version), found.run_id, local / "artifacts", model, meta,
                  options, (found.tags or {}).get(FINGERPRINT_TAG, ""), trees)


def recalibrate(
    task: str,
    settings: TrainingSettings,
    *,
    reasons: Sequence[str] = (),
    progress: Progress | None = None,
) -> RecalibrationResult:
    """Refit the champion's calibrator of ``task`` on the newest matured labels, register the
    result as a new version (same trees) and pass it through the gate; ``reasons`` (why: the
    daily run's trigger) go on the MLflow run."""
    import mlflow

    from features.build import feature_groups
    from features.catalogue import catalogue_version
    from features.event_types import stored_spec
    from features.store import FeatureStore
    from features.validation import load_tables
    from training.calibration import Calibrator, fit_calibrator
    from training.fingerprint import code_version, fingerprint
    from training.metrics import evaluate
    from training.tracking import (
        FINGERPRINT_TAG,
        aliases_of,
        configure,
        experiment_id,
        git_commit,
        set_alias,
        tag_version,
        version_with_fingerprint,
    )
    from training.train import check_labels, observed_dates, task_dataset
    from training.uncertainty import bootstrap

    began = time.perf_counter()
    say = progress or (lambda message: log.info(message))
    name = registered_name(task)
    why = list(reasons) or ["by hand (`propensity train recalibrate`)"]
    uri = configure(settings.tracking_uri, settings.mlflow_dir)
    with tempfile.TemporaryDirectory(prefix="recalibrate-") as tmp:
        say(f"loading the champion of {name}")
        source = load_source(name, Path(tmp) / "source")
        horizon = int(source.meta.get("horizon_days") or settings.horizon_days)
        say("loading raw tables and snapshots")
        tables = load_tables(settings.raw_dir)
        store = FeatureStore(settings.features_dir)
        catalogue = catalogue_version(feature_groups(stored_spec(settings, store)))
        if source.meta.get("catalogue_version") not in (None, catalogue):
            raise RecalibrationError(
                f"{name} v{source.version} was trained on feature catalogue "
                f"{source.meta['catalogue_version']}; the snapshots are built by {catalogue}: "
                "its trees cannot read them, retrain with `propensity train`")
        observed = observed_dates(tables, store, horizon, catalogue)
        fit_dates, test_dates = matured_blocks(observed, source.last_training_date(), horizon)
        say(f"labels of {len(fit_dates)} calibration date(s) and the test date {test_dates[0]}")
        parts = {part: task_dataset(task, tables, store, dates, horizon,
                                settings.upsell_min_growth, source.options["product"],
                                source.options["renewal_only"])
                 for part, dates in (("calibration", fit_dates), ("test", test_dates))}
        for part, frame in parts.items():
            check_labels(part, frame)
        raw = {part: raw_scores(source.model, frame) for part, frame in parts.items()}
        say(f"refitting the calibrator on {len(raw['calibration']):,} rows")
        try:
            calibrator, report = fit_calibrator(raw["calibration"],
                                                parts["calibration"]["label"].to_numpy(),
                                                method="auto", seed=settings.seed)
        except ValueError as exc:
            raise RecalibrationError(f"calibration block {', '.join(map(str, fit_dates))}: "
                                     f"{exc}") from exc
        test = parts["test"]
        y = test["label"].to_numpy()
        old = Calibrator.from_dict(source.calibrator).predict(raw["test"])
        new = calibrator.predict(raw["test"])
        value = test["value"].clip(lower=0).to_numpy() if "value" in test else None
        exposure = test["arr_at_as_of"].to_numpy() if "arr_at_as_of" in test else None
        before = evaluate(y, old, value=value, exposure=exposure)
        after = evaluate(y, new, value=value, exposure=exposure)
        paired = bootstrap(y, {"model": new, "champion": old}, test[ACCOUNT_ID].to_numpy(),
                           pairs=[("model", "champion")], seed=settings.seed)
        versus = paired.differences["model - champion"]["roc_auc"]
        decision = gate(before, after, versus,
                        max_ece_increase=settings.promotion_max_ece_increase,
                        auc_margin=settings.promotion_auc_margin)

        made_from = fingerprint(
            task=task, options={**source.options, RECALIBRATED_FROM: source.version,
                                "source_fingerprint": source.fingerprint},
            settings=settings.model_dump(), parts=parts, catalogue=catalogue,
            code=code_version())
        existing = version_with_fingerprint(name, made_from)
        window = {"calibration": [str(d) for d in fit_dates],
                  "test": [str(d) for d in test_dates]}
        rows = {part: len(frame) for part, frame in parts.items()}
        positives = {part: int(frame["label"].sum()) for part, frame in parts.items()}
        say("logging the run and registering the recalibrated model")
        mlflow.set_experiment(experiment_id=experiment_id(name, uri, settings.mlflow_dir))
        with mlflow.start_run(run_name=f"{task} recalibration of v{source.version}") as run:
            mlflow.set_tags({"task": task, "git_commit": git_commit(),
                             "catalogue_version": catalogue, FINGERPRINT_TAG: made_from,
                             RECALIBRATED_FROM: str(source.version),
                             REASON_TAG: "; ".join(why)[:5000]})
            mlflow.log_params({
                "task": task, "recalibrated_from": source.version, "horizon_days": horizon,
                "seed": settings.seed, "calibration_method": report["method"],
                "window_calibration": ",".join(window["calibration"]),
                "window_test": ",".join(window["test"]),
                **{f"rows_{k}": v for k, v in rows.items()},
                **{k: v for k, v in source.options.items() if v},
            })
            mlflow.log_metrics({f"test_{k}": v for k, v in after.items() if _finite(v)})
            mlflow.log_metrics({f"champion_test_{k}": v for k, v in before.items()
                                if _finite(v)})
            mlflow.log_metrics(paired.mlflow_metrics({"model": "test_",
                                                      "champion": "champion_test_"}))
            mlflow.log_dict(report, "calibration.json")
            mlflow.log_dict({"window": window, "rows": rows, "positives": positives,
                             "before": before, "after": after, "why": why,
                             "versus_source": versus.as_dict()}, "recalibration.json")
            if existing is not None:
                version = int(existing.version)
                held = aliases_of(name, version)
                alias = ", ".join(held) if held else "none"
                reason = (f"identical recalibration of v{source.version} (same labels, "
                          f"settings and code): v{version} exists, no new version registered")
                mlflow.set_tags({"reused_version": str(version), "alias": alias,
                                 "promotion_reason": reason})
            else:
                version = _register(source, calibrator.to_dict(), after, window, report,
                                    why, parts["test"], Path(tmp) / "new")
                tag_version(name, version, FINGERPRINT_TAG, made_from)
                tag_version(name, version, RECALIBRATED_FROM, str(source.version))
                alias, reason = decision.alias, decision.reason
                set_alias(name, version, alias)
                mlflow.set_tags({"alias": alias, "promotion_reason": reason})
    return RecalibrationResult(
        task=task, registered_model=name, source_version=source.version, version=version,
        alias=alias, reason=reason, run_id=run.info.run_id,
        calibration_dates=window["calibration"], test_dates=window["test"], rows=rows,
        positives=positives, before=before, after=after, calibration=report,
        versus_source=versus.as_dict(), seconds=round(time.perf_counter() - began, 3),
        fingerprint=made_from, reused=existing is not None, why=why)


def _register(source: Source, calibrator: dict, after: dict, window: dict, report: dict,
              why: list[str], test: pd.DataFrame, folder: Path) -> int:
    """Log and register the source's model files with ``calibrator`` and updated meta; the
    new version's number."""
    from training.model_logging import log_artifacts_model
    from training.models import FeatureSchema

    folder.mkdir(parents=True)
    artifacts = {}
    for path in sorted(source.artifacts.iterdir()):
        artifacts[path.stem] = str(shutil.copy2(path, folder / path.name))
    meta = {**source.meta,
            "test_metrics": {k: v for k, v in after.items() if _finite(v)},
            "recalibration": {"from_version": source.version, "method": report["method"],
                              "window": window, "why": why,
                              "trees_registered_at": source.trees_registered_at}}
    (folder / "calibrator.json").write_text(json.dumps(calibrator), encoding="utf-8")
    (folder / "meta.json").write_text(json.dumps(meta, indent=1, default=str),
                                      encoding="utf-8")
    schema = FeatureSchema.from_dict(source.model.schema)
    info = log_artifacts_model(artifacts, schema, test.head(5),
                               registered_model_name=source.name)
    return int(info.registered_model_version)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and bool(np.isfinite(value))


def summary_json(result: RecalibrationResult) -> str:
    return json.dumps(result.as_json(), indent=2, default=str)

