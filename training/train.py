"""Train one propensity model end to end: dataset, time split, fit, calibrate, compare, log.

The steps are plain functions; ``train`` wires them and records everything in one MLflow run:
params, the data window and row counts, the label rate, the feature list and catalogue
version, the code's commit, test metrics of the model and both baselines, report plots, and
the calibrated model (a pyfunc that serving loads by alias).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from features.build import feature_groups
from features.catalogue import ACCOUNT_ID, AS_OF, FeatureSpec, catalogue_version
from features.event_types import stored_spec
from features.store import FeatureStore
from training.settings import TrainingSettings
from training.tasks import registered_name

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

BASELINES = ("logistic", "health_score")  # always there; "customer_score" when the data have it


class Reference(Protocol):
    """Reference probabilities for the test rows, reported beside the model's metrics.

    Given the task, the test rows (``account_id``, ``as_of``) and the label definition, it
    returns one probability per row, or None when it has none for this task or definition. On
    generated data the composition root passes the simulator's oracle (the best any model could
    reach); real data has no such reference and training runs without one.
    """

    def __call__(
        self, task: str, rows: pd.DataFrame, *, horizon_days: int, upsell_min_growth: float
    ) -> np.ndarray | None: ...


class TrainingError(ValueError):
    """Training cannot go on with this data; nothing was registered."""


@dataclass
class TrainResult:
    task: str
    run_id: str
    registered_model: str
    version: int
    alias: str
    reason: str
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    oracle: dict[str, float] | None
    calibration: dict
    window: dict[str, str]
    rows: dict[str, int]
    dropped_features: list[str] = field(default_factory=list)  # constant or null in training

    def as_json(self) -> dict:
        return {
            "task": self.task, "run_id": self.run_id, "registered_model": self.registered_model,
            "version": self.version, "alias": self.alias, "reason": self.reason,
            "metrics": self.metrics, "baselines": self.baselines, "oracle": self.oracle,
            "calibration": self.calibration, "window": self.window, "rows": self.rows,
            "dropped_features": self.dropped_features,
        }


def _dataset(task: str, tables, store: FeatureStore, dates: list[date], horizon_days: int,
             upsell_min_growth: float, product: str | None, renewal_only: bool) -> pd.DataFrame:
    from training.dataset import build_dataset

    kwargs: dict = {}
    if task == "upsell":
        kwargs["min_growth"] = upsell_min_growth
    if task == "churn" and renewal_only:
        kwargs["renewal_only"] = True
    if task == "cross-sell":
        kwargs["product"] = product
    return build_dataset(task, tables, store, dates, horizon_days, **kwargs)


def _check_labels(name: str, frame: pd.DataFrame) -> None:
    if frame.empty:
        raise TrainingError(f"{name} set is empty: no labelled snapshot rows")
    classes = sorted(frame["label"].unique())
    if len(classes) < 2:
        raise TrainingError(
            f"{name} set has a single class (label = {classes[0]} for all {len(frame):,} rows): "
            "nothing to learn or evaluate"
        )


def feature_list(frame: pd.DataFrame, spec: FeatureSpec) -> list[str]:
    """The catalogue's feature columns present in the dataset (+ the candidate product)."""
    names = [f.name for g in feature_groups(spec) for f in g.features]
    extra = ["candidate_product"] if "candidate_product" in frame.columns else []
    return [n for n in names if n in frame.columns] + extra


def uninformative(frame: pd.DataFrame, features: list[str]) -> list[str]:
    """Features with a single value (or only nulls) over ``frame``: nothing to learn from them
    (an absent optional table, an event type the window never saw). A column that is partly
    null and otherwise constant is kept: being null is the information."""
    return [f for f in features if frame[f].nunique(dropna=False) <= 1]


@dataclass
class Fitted:
    """A model fitted on one split and scored on its test window, with its baselines."""

    parts: dict[str, pd.DataFrame]
    features: list[str]
    dropped: list[str]  # constant or all-null in the training window: not given to the model
    schema: object
    booster: object
    calibrator: object
    calibration: dict
    raw_test: np.ndarray
    scores: dict[str, np.ndarray]
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    oracle: dict[str, float] | None


def _observed_dates(tables, store: FeatureStore, horizon: int, catalogue: str) -> list[date]:
    """Snapshot dates with an observed label window, each built by this code's catalogue."""
    from training.labels import label_window_observed

    dates = store.dates()
    if not dates:
        raise TrainingError(
            f"no feature snapshots in {store.root}: run `propensity features build`"
        )
    observed = [d for d in dates if label_window_observed(tables, d, horizon)]
    check_catalogue_versions(store, observed, catalogue)
    return observed


def check_catalogue_versions(store: FeatureStore, dates: list[date], catalogue: str) -> None:
    """A snapshot built by another feature catalogue means other features under the same
    names: refuse it rather than train on a mix."""
    stale = [(d, store.catalogue_version(d)) for d in dates]
    stale = [(d, v) for d, v in stale if v != catalogue]
    if stale:
        listed = ", ".join(f"as_of={d} ({v or 'no version'})" for d, v in stale[:5])
        raise TrainingError(
            f"{len(stale)} feature snapshot(s) in {store.root} were built by another feature "
            f"catalogue than this code's ({catalogue}): {listed}; rebuild them with "
            "`propensity features build`")


def fit_and_score(task: str, tables, store: FeatureStore, split, settings: TrainingSettings, *,
                  product: str | None, renewal_only: bool, say: Progress,
                  reference: Reference | None = None) -> Fitted:
    """Datasets of one split, LightGBM + calibration, both baselines, test metrics (and the
    reference's, when one is given and knows this task)."""
    from training import baselines as bl
    from training import models
    from training.calibration import fit_calibrator
    from training.metrics import evaluate

    say(f"building the {task} dataset ({len(split.train)} train, {len(split.validation)} "
        f"validation, {len(split.test)} test dates)")
    parts = {
        part: _dataset(task, tables, store, getattr(split, part), settings.horizon_days,
                       settings.upsell_min_growth, product, renewal_only)
        for part in ("train", "validation", "test")
    }
    for part, frame in parts.items():
        _check_labels(part, frame)
    candidates = feature_list(parts["train"], stored_spec(settings, store))
    dropped = uninformative(parts["train"], candidates)
    if dropped:
        say(f"dropping {len(dropped)} feature(s) constant or all-null in the training window: "
            + ", ".join(dropped))
    features = [f for f in candidates if f not in dropped]
    if not features:
        raise TrainingError("every feature is constant or null in the training window: "
                            "nothing to learn from")
    schema = models.FeatureSchema.infer(parts["train"], features)
    frames = {part: models.to_model_frame(f, schema) for part, f in parts.items()}
    y = {part: f["label"].to_numpy() for part, f in parts.items()}

    say("fitting LightGBM with early stopping")
    booster = models.fit_lightgbm(frames["train"], y["train"], frames["validation"],
                                  y["validation"], schema, settings.seed)
    raw = {part: models.predict_raw(booster, frames[part]) for part in ("validation", "test")}
    say("calibrating on the validation slice")
    calibrator, calibration = fit_calibrator(raw["validation"], y["validation"], method="auto",
                                             seed=settings.seed)
    p_test = calibrator.predict(raw["test"])

    say("baselines: logistic regression, the fitted health scorecard, the customer's score")
    logistic = bl.logistic_baseline(schema, settings.seed)
    logistic.fit(frames["train"], y["train"])
    test = parts["test"]
    scores = {
        "model": p_test,
        "logistic": logistic.predict_proba(frames["test"])[:, 1],
    }
    references = bl.reference_scores(task, parts, tables, settings.seed)
    scores.update(references.scores)
    exposure = test["arr_at_as_of"].to_numpy() if "arr_at_as_of" in test else None
    value = test["value"].clip(lower=0).to_numpy() if "value" in test else None
    metrics = evaluate(y["test"], p_test, value=value, exposure=exposure)
    metrics["ece_before_calibration"] = evaluate(y["test"], raw["test"])["ece"]
    baselines = {
        b: evaluate(y["test"], scores[b], value=value, exposure=exposure)
        | references.notes.get(b, {})
        for b in scores if b != "model"
    }
    oracle = None
    p_reference = None
    if reference is not None:
        p_reference = reference(task, test[[ACCOUNT_ID, AS_OF]],
                                horizon_days=settings.horizon_days,
                                upsell_min_growth=settings.upsell_min_growth)
    if p_reference is not None:
        oracle = evaluate(y["test"], p_reference, value=value, exposure=exposure)
    return Fitted(parts, features, dropped, schema, booster, calibrator, calibration, raw["test"],
                  scores, metrics, baselines, oracle)


def train(
    task: str,
    settings: TrainingSettings,
    *,
    product: str | None = None,
    renewal_only: bool = False,
    progress: Progress | None = None,
    reference: Reference | None = None,
) -> TrainResult:
    """Fit, evaluate, log and register a model for ``task``; promote it if it beats the champion."""
    import mlflow

    from features.validation import load_tables
    from training.model_logging import log_propensity_model
    from training.split import time_split
    from training.tracking import (
        champion_version,
        configure,
        decide,
        experiment_id,
        git_commit,
        set_alias,
    )
    from training.value import value_stats

    say = progress or (lambda message: log.info(message))
    name = registered_name(task)
    horizon = settings.horizon_days
    say("loading raw tables and snapshots")
    tables = load_tables(settings.raw_dir)
    store = FeatureStore(settings.features_dir)
    spec = stored_spec(settings, store)
    version_tag = catalogue_version(feature_groups(spec))
    observed = _observed_dates(tables, store, horizon, version_tag)
    try:
        split = time_split(observed, horizon, validation=2, test=2)
    except ValueError as exc:
        raise TrainingError(f"{len(observed)} snapshot dates with a fully observed {horizon}-day "
                            f"label window: {exc}") from exc
    fit = fit_and_score(task, tables, store, split, settings, product=product,
                        renewal_only=renewal_only, say=say, reference=reference)
    parts, features, metrics = fit.parts, fit.features, fit.metrics
    test = parts["test"]
    y_test = test["label"].to_numpy()

    uri = configure(settings.tracking_uri, settings.mlflow_dir)
    champion = champion_version(name)
    champion_metrics = _champion_on_window(champion, test[features], y_test)

    window = {
        "train_from": str(split.train[0]), "train_to": str(split.train[-1]),
        "validation": ",".join(map(str, split.validation)),
        "test": ",".join(map(str, split.test)), "horizon_days": str(horizon),
    }
    rows = {part: len(f) for part, f in parts.items()}
    say("logging the run and registering the model")
    mlflow.set_experiment(experiment_id=experiment_id(name, uri, settings.mlflow_dir))
    with mlflow.start_run(run_name=f"{task} {window['test']}") as run:
        mlflow.set_tags({"task": task, "git_commit": git_commit(),
                         "catalogue_version": version_tag})
        mlflow.log_params({
            "task": task, "horizon_days": horizon, "seed": settings.seed,
            "n_features": len(features), "n_features_dropped": len(fit.dropped),
            "best_iteration": fit.booster.best_iteration,
            "calibration_method": fit.calibration.get("method"),
            **{f"window_{k}": v for k, v in window.items()},
            **{f"rows_{k}": v for k, v in rows.items()},
            **({"product": product} if product else {}),
            **({"renewal_only": True} if renewal_only else {}),
        })
        mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items() if _finite(v)})
        for b, m in fit.baselines.items():
            mlflow.log_metrics({f"{b}_test_{k}": v for k, v in m.items() if _finite(v)})
        if fit.oracle:
            mlflow.log_metrics({f"oracle_test_{k}": v for k, v in fit.oracle.items()
                                if _finite(v)})
        for part, frame in parts.items():
            mlflow.log_metric(f"label_rate_{part}", float(frame["label"].mean()))
        mlflow.log_dict({"features": features, "dropped": fit.dropped,
                         "event_types": list(spec.event_types),
                         "schema": fit.schema.to_dict()}, "features.json")
        mlflow.log_dict(fit.calibration, "calibration.json")
        _log_report(fit, test, y_test)
        meta = {"task": task, "horizon_days": horizon, "window": window,
                "catalogue_version": version_tag, "event_types": list(spec.event_types),
                "dropped_features": fit.dropped, "value": value_stats(task, parts["train"]),
                "test_metrics": {k: v for k, v in metrics.items() if _finite(v)}}
        info = log_propensity_model(fit.booster, fit.schema, fit.calibrator.to_dict(), meta,
                                    test[features].head(5), registered_model_name=name)
        version = int(info.registered_model_version)
        decision = decide(metrics, champion_metrics, settings.promotion_max_ece_increase)
        set_alias(name, version, decision.alias)
        mlflow.set_tags({"alias": decision.alias, "promotion_reason": decision.reason})
        return TrainResult(
            task=task, run_id=run.info.run_id, registered_model=name, version=version,
            alias=decision.alias, reason=decision.reason, metrics=metrics,
            baselines=fit.baselines, oracle=fit.oracle, calibration=fit.calibration,
            window=window, rows=rows, dropped_features=fit.dropped,
        )


def backtest(
    task: str,
    settings: TrainingSettings,
    n_cutoffs: int = 3,
    *,
    product: str | None = None,
    renewal_only: bool = False,
    progress: Progress | None = None,
    reference: Reference | None = None,
) -> list[dict]:
    """Rolling backtest: refit at ``n_cutoffs`` successive cut-offs, one test date apart, and
    report each test window's metrics (model and baselines). Registers nothing."""
    from features.validation import load_tables
    from training.split import rolling_backtest

    say = progress or (lambda message: log.info(message))
    tables = load_tables(settings.raw_dir)
    store = FeatureStore(settings.features_dir)
    observed = _observed_dates(tables, store, settings.horizon_days,
                               catalogue_version(feature_groups(stored_spec(settings, store))))
    try:
        splits = rolling_backtest(observed, settings.horizon_days, n_cutoffs, validation=2,
                                  test=1)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc
    rows = []
    for i, split in enumerate(splits, 1):
        fit = fit_and_score(task, tables, store, split, settings, product=product,
                            renewal_only=renewal_only, reference=reference,
                            say=lambda m, i=i: say(f"cut-off {i}/{len(splits)}: {m}"))
        rows.append({"test": str(split.test[0]), "train_to": str(split.train[-1]),
                     "rows_test": len(fit.parts["test"]), "model": fit.metrics,
                     **fit.baselines, "oracle": fit.oracle})
    return rows


def _log_report(fit: Fitted, test: pd.DataFrame, y_test: np.ndarray) -> None:
    """The run's report plots (curves, calibration, lift, importance, SHAP) under ``report/``."""
    import mlflow

    from training import models, plots

    features = fit.features
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        sample = models.to_model_frame(test.head(2000), fit.schema)
        contrib = models.contributions(fit.booster, sample)
        imp = models.importance(fit.booster)
        plots.roc_pr_curves(y_test, fit.scores, out / "roc_pr.png")
        plots.calibration_curve(y_test, fit.raw_test, fit.scores["model"],
                                out / "calibration.png")
        plots.lift_gain_chart(y_test, fit.scores["model"], out / "lift_gain.png")
        plots.feature_importance(list(imp["feature"]), list(imp["gain"]),
                                 out / "feature_importance.png")
        plots.shap_summary(features, contrib, test[features].head(2000),
                           out / "shap_summary.png")
        mlflow.log_artifacts(str(out), "report")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and bool(np.isfinite(value))


def _champion_on_window(champion, test: pd.DataFrame, y: np.ndarray) -> dict | None:
    """The current champion's metrics on the new run's test window (None: no champion).

    A champion that cannot score these rows (a changed feature catalogue) is compared by the
    test metrics it logged, which is the best evidence left; that is said in the log.
    """
    if champion is None:
        return None
    import mlflow

    from training.metrics import evaluate

    try:
        model = mlflow.pyfunc.load_model(f"models:/{champion.name}/{champion.version}")
        p = model.predict(test)["probability"].to_numpy()  # feature columns only
        return evaluate(y, p)
    except Exception as exc:  # noqa: BLE001 - any failure to score means: fall back
        log.warning("champion v%s could not score the test window (%s); using its logged "
                    "metrics", champion.version, exc)
        run = mlflow.get_run(champion.run_id)
        logged = run.data.metrics
        return {"roc_auc": logged.get("test_roc_auc", 0.0), "ece": logged.get("test_ece", 1.0)}


def summary_json(result: TrainResult) -> str:
    return json.dumps(result.as_json(), indent=2, default=str)
