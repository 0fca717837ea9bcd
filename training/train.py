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
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from features.build import feature_groups
from features.catalogue import ACCOUNT_ID, AS_OF, FeatureSpec, catalogue_version
from features.event_types import stored_spec
from features.store import FeatureStore
from training.settings import TrainingSettings
from training.tasks import registered_name

if TYPE_CHECKING:
    from training.uncertainty import Uncertainty

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
    selection: dict = field(default_factory=dict)  # candidates, folds, choice (selection.json)
    intervals: dict | None = None  # training.uncertainty.Uncertainty.as_json()
    fingerprint: str = ""  # what the version was trained from (training.fingerprint)
    reused: bool = False  # an identical retrain: ``version`` existed, nothing was registered

    def as_json(self) -> dict:
        return {
            "task": self.task, "run_id": self.run_id, "registered_model": self.registered_model,
            "version": self.version, "alias": self.alias, "reason": self.reason,
            "reused": self.reused, "fingerprint": self.fingerprint,
            "metrics": self.metrics, "baselines": self.baselines, "oracle": self.oracle,
            "intervals": self.intervals,
            "calibration": self.calibration, "window": self.window, "rows": self.rows,
            "dropped_features": self.dropped_features, "selection": self.selection,
        }


def task_dataset(task: str, tables, store: FeatureStore, dates: list[date], horizon_days: int,
             upsell_min_growth: float, product: str | None, renewal_only: bool) -> pd.DataFrame:
    from training.dataset import build_dataset

    return build_dataset(task, tables, store, dates, horizon_days,
                         **_label_kwargs(task, upsell_min_growth, product, renewal_only))


def _label_kwargs(task: str, upsell_min_growth: float, product: str | None,
                  renewal_only: bool) -> dict:
    kwargs: dict = {}
    if task == "upsell":
        kwargs["min_growth"] = upsell_min_growth
    if task == "churn" and renewal_only:
        kwargs["renewal_only"] = True
    if task == "cross-sell":
        kwargs["product"] = product
    return kwargs


def check_labels(name: str, frame: pd.DataFrame) -> None:
    if frame.empty:
        raise TrainingError(f"{name} set is empty: no labelled snapshot rows")
    classes = sorted(frame["label"].unique())
    if len(classes) < 2:
        raise TrainingError(
            f"{name} set has a single class (label = {classes[0]} for all {len(frame):,} rows): "
            "nothing to learn or evaluate"
        )


def catalogue_names(spec: FeatureSpec) -> list[str]:
    """Every feature name of the catalogue, in its order."""
    return [f.name for g in feature_groups(spec) for f in g.features]


def training_rows(task: str, tables, store: FeatureStore, dates: list[date], horizon_days: int,
                  upsell_min_growth: float, product: str | None, renewal_only: bool,
                  spec: FeatureSpec):
    """The training part of a split as `training.training_rows.TrainingRows`: its feature
    matrix built date by date (the catalogue's features present in the snapshots, less those
    `uninformative` drops; the schema `FeatureSchema.infer` gives), the `TRAIN_KEPT` columns
    and the references' columns."""
    from training.baselines import reference_columns
    from training.training_rows import build_training_rows

    return build_training_rows(
        task, tables, store, dates, horizon_days, candidates=catalogue_names(spec),
        kept=TRAIN_KEPT, measured=reference_columns(task),
        **_label_kwargs(task, upsell_min_growth, product, renewal_only))


def uninformative(frame: pd.DataFrame, features: list[str]) -> list[str]:
    """Features with a single value (or only nulls) over ``frame``: nothing to learn from them
    (an absent optional table, an event type the window never saw). A column that is partly
    null and otherwise constant is kept: being null is the information."""
    return [f for f in features if frame[f].nunique(dropna=False) <= 1]


@dataclass
class Fitted:
    """A model fitted on one split and scored on its test window, with its baselines."""

    parts: dict[str, pd.DataFrame]  # "train": its keys, labels and values only (TRAIN_KEPT)
    features: list[str]
    dropped: list[str]  # constant or all-null in the training window: not given to the model
    schema: object
    booster: object  # the model's LightGBM part; None when the logistic regression was chosen
    calibrator: object
    calibration: dict
    raw_test: np.ndarray
    scores: dict[str, np.ndarray]
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    oracle: dict[str, float] | None
    model: object = None  # training.estimator.Estimator: the chosen, refitted model
    selection: dict = field(default_factory=dict)  # training.selection.Selection.as_json()
    digests: dict[str, str] = field(default_factory=dict)  # frame_digest of the full parts


def observed_dates(tables, store: FeatureStore, horizon: int, catalogue: str) -> list[date]:
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
    """Datasets of one split; the model chosen by expanding-window cross-validation over all
    training dates (the split's train and validation dates), refitted on them and calibrated
    on the out-of-fold predictions (`training.selection`); both baselines; test metrics (and
    the reference's, when one is given and knows this task)."""
    from training import baselines as bl
    from training import models
    from training.calibration import fit_calibrator
    from training.dataset import return_freed_memory
    from training.metrics import evaluate
    from training.selection import HandedOver, select_and_refit

    training_dates = sorted({*split.train, *split.validation})
    say(f"building the {task} dataset ({len(training_dates)} training, {len(split.test)} "
        "test dates)")
    # the training rows date by date, straight into one float matrix (no stacked frame of
    # every feature: `training.training_rows`); the test rows as a frame (2 dates)
    rows = training_rows(task, tables, store, training_dates, settings.horizon_days,
                         settings.upsell_min_growth, product, renewal_only,
                         stored_spec(settings, store))
    def test_rows() -> pd.DataFrame:
        return task_dataset(task, tables, store, split.test, settings.horizon_days,
                            settings.upsell_min_growth, product, renewal_only)

    check_labels("train", rows.frame)
    # the test rows are checked now, so that bad labels fail before the fits, then read again
    # after them: held through the fits, cross-sell's test rows at 100,000 accounts (2 dates
    # of account x product pairs with every feature) sat under every fit
    check_labels("test", test_rows())
    parts = {"train": rows.frame}
    dropped = rows.dropped
    if dropped:
        say(f"dropping {len(dropped)} feature(s) constant or all-null in the training window: "
            + ", ".join(dropped))
    features = rows.features
    if not features:
        raise TrainingError("every feature is constant or null in the training window: "
                            "nothing to learn from")
    # the matrix's only reference goes to the selection, which frees it before the refit's
    # trees (`training.selection.HandedOver`)
    schema, matrix = rows.schema, HandedOver(rows.x)
    y = {"train": parts["train"]["label"].to_numpy().copy()}
    digests = {"train": rows.digest}
    measures = rows.measures
    train = parts["train"]
    del rows
    return_freed_memory()

    say("choosing logistic / LightGBM / blend by expanding-window cross-validation")
    try:
        estimator, selection = select_and_refit(
            matrix, y["train"], train[AS_OF], train[ACCOUNT_ID], schema,
            settings.horizon_days, settings.seed, say=say)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc
    # the baseline: the logistic regression refitted as the folds fit it (on at most
    # LOGISTIC_MAX_ROWS rows), the model's own linear part when it has one
    logistic = selection.logistic
    # the references after the fits, not before: their 14 logistic fits over every training
    # row and the customer score's lookup (DuckDB) left ~1 GB mapped that the fits then ran
    # on top of (cross-sell at 100,000 accounts: fold fits at 4.1-4.5 GB)
    parts["test"] = test_rows()
    y["test"] = parts["test"]["label"].to_numpy().copy()
    say("baselines: the fitted health scorecard, the customer's score")
    references = bl.reference_scores(task, {"train": measures.frame(), "test": parts["test"]},
                                     tables, settings.seed)
    del measures
    return_freed_memory()
    # the test rows as a model frame only now: not held through the fits
    test_frame = models.to_model_frame(parts["test"], schema)
    raw_test = estimator.predict_raw(test_frame)
    say(f"calibrating on {len(selection.oof):,} out-of-fold predictions")
    calibrator, calibration = fit_calibrator(selection.oof, selection.oof_label, method="auto",
                                             seed=settings.seed)
    p_test = calibrator.predict(raw_test)
    test = parts["test"]
    scores = {
        "model": p_test,
        "logistic": logistic.predict_proba(test_frame)[:, 1],
    }
    scores.update(references.scores)
    exposure = test["arr_at_as_of"].to_numpy() if "arr_at_as_of" in test else None
    value = test["value"].clip(lower=0).to_numpy() if "value" in test else None
    metrics = evaluate(y["test"], p_test, value=value, exposure=exposure)
    metrics["ece_before_calibration"] = evaluate(y["test"], raw_test)["ece"]
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
    return Fitted(parts, features, dropped, schema, estimator.booster, calibrator, calibration,
                  raw_test, scores, metrics, baselines, oracle, estimator, selection.as_json(),
                  digests)


#: The training rows' columns kept beside the feature matrix: keys, label, value
#: (`training.value.value_stats` reads them, by segment or product)
TRAIN_KEPT = (ACCOUNT_ID, AS_OF, "label", "value", "arr_at_as_of", "segment",
              "candidate_product")


def train(
    task: str,
    settings: TrainingSettings,
    *,
    product: str | None = None,
    renewal_only: bool = False,
    progress: Progress | None = None,
    reference: Reference | None = None,
    tags: dict[str, str] | None = None,
) -> TrainResult:
    """Fit, evaluate, log and register a model for ``task``; promote it if it beats the champion.

    ``tags`` go on the MLflow run (e.g. why a daily run retrained)."""
    import mlflow

    from features.validation import load_tables
    from training.fingerprint import code_version, fingerprint
    from training.model_logging import log_propensity_model
    from training.split import time_split
    from training.tracking import (
        FINGERPRINT_TAG,
        aliases_of,
        champion_version,
        configure,
        decide,
        experiment_id,
        git_commit,
        set_alias,
        tag_version,
        version_with_fingerprint,
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
    observed = observed_dates(tables, store, horizon, version_tag)
    try:
        split = time_split(observed, horizon, validation=0, test=2)  # CV inside the training
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
    p_champion, champion_metrics = _champion_on_window(champion, test[features], y_test)
    say("bootstrap intervals over accounts, paired comparisons")
    extra = {"oracle": _reference_scores(reference, task, test, settings)}
    if p_champion is not None:
        extra["champion"] = p_champion
    uncertainty = intervals(fit, settings.seed, **extra)
    versus = {pair.split(" - ", 1)[1]: d["roc_auc"] for pair, d in uncertainty.differences.items()}
    trained_from = fingerprint(
        task=task, options={"product": product, "renewal_only": renewal_only},
        settings=settings.model_dump(), parts={**parts, **fit.digests}, catalogue=version_tag,
        code=code_version())
    existing = version_with_fingerprint(name, trained_from)

    window = {
        "train_from": str(split.train[0]), "train_to": str(split.train[-1]),
        "validation": ",".join(map(str, split.validation)),
        "test": ",".join(map(str, split.test)), "horizon_days": str(horizon),
    }
    rows = {part: len(f) for part, f in parts.items()}
    say("logging the run and registering the model")
    mlflow.set_experiment(experiment_id=experiment_id(name, uri, settings.mlflow_dir))
    with mlflow.start_run(run_name=f"{task} {window['test']}") as run:
        mlflow.set_tags({**(tags or {}), "task": task, "git_commit": git_commit(),
                         "catalogue_version": version_tag, FINGERPRINT_TAG: trained_from})
        mlflow.log_params({
            "task": task, "horizon_days": horizon, "seed": settings.seed,
            "n_features": len(features), "n_features_dropped": len(fit.dropped),
            "model_kind": fit.model.kind, "tree_weight": fit.model.tree_weight,
            "lightgbm_rounds": fit.selection["rounds"]["final"],
            "logistic_c": fit.selection["logistic_c"],
            "cv_folds": len(fit.selection["folds"]),
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
        mlflow.log_metrics(uncertainty.mlflow_metrics(
            {"model": "test_", **{b: f"{b}_test_" for b in fit.baselines},
             "oracle": "oracle_test_", "champion": "champion_test_"}))
        mlflow.log_dict(uncertainty.as_json(), "intervals.json")
        for part, frame in parts.items():
            mlflow.log_metric(f"label_rate_{part}", float(frame["label"].mean()))
        mlflow.log_dict({"features": features, "dropped": fit.dropped,
                         "event_types": list(spec.event_types),
                         "schema": fit.schema.to_dict()}, "features.json")
        mlflow.log_dict(fit.calibration, "calibration.json")
        mlflow.log_dict(fit.selection, "selection.json")
        mlflow.log_metrics(selection_metrics(fit.selection))
        _log_report(fit, test, y_test)
        if existing is not None:
            version = int(existing.version)
            held = aliases_of(name, version)
            alias = ", ".join(held) if held else "none"
            reason = (f"identical retrain of v{version} (same data, settings and code): no new "
                      "version registered")
            mlflow.set_tags({"reused_version": str(version), "alias": alias,
                             "promotion_reason": reason})
        else:
            meta = {"task": task, "horizon_days": horizon, "window": window,
                    "catalogue_version": version_tag, "event_types": list(spec.event_types),
                    "dropped_features": fit.dropped,
                    "value": value_stats(task, parts["train"]),
                    "test_metrics": {k: v for k, v in metrics.items() if _finite(v)}}
            info = log_propensity_model(fit.model, fit.schema, fit.calibrator.to_dict(), meta,
                                        test[features].head(5), registered_model_name=name)
            version = int(info.registered_model_version)
            tag_version(name, version, FINGERPRINT_TAG, trained_from)
            decision = decide(
                metrics, champion_metrics, settings.promotion_max_ece_increase,
                versus_champion=versus.get("champion"),
                versus_baselines={b: versus[b] for b in fit.baselines if b in versus},
                auc_margin=settings.promotion_auc_margin)
            alias, reason = decision.alias, decision.reason
            set_alias(name, version, alias)
            mlflow.set_tags({"alias": alias, "promotion_reason": reason})
        return TrainResult(
            task=task, run_id=run.info.run_id, registered_model=name, version=version,
            alias=alias, reason=reason, metrics=metrics,
            baselines=fit.baselines, oracle=fit.oracle, calibration=fit.calibration,
            window=window, rows=rows, dropped_features=fit.dropped, selection=fit.selection,
            intervals=uncertainty.as_json(), fingerprint=trained_from, reused=existing is not None,
        )


def intervals(fit: Fitted, seed: int, **extra: np.ndarray | None) -> Uncertainty:
    """Bootstrap intervals over the test window's accounts for the model, its baselines and
    any ``extra`` scores of the same rows (the oracle, the champion; None: left out), and the
    paired differences model - each of them."""
    from training.uncertainty import bootstrap

    test = fit.parts["test"]
    scores = {"model": fit.scores["model"],
              **{b: fit.scores[b] for b in fit.baselines if b in fit.scores},
              **{k: p for k, p in extra.items() if p is not None}}
    return bootstrap(
        test["label"].to_numpy(), scores, test[ACCOUNT_ID].to_numpy(),
        value=test["value"].clip(lower=0).to_numpy() if "value" in test else None,
        exposure=test["arr_at_as_of"].to_numpy() if "arr_at_as_of" in test else None,
        pairs=[("model", k) for k in scores if k != "model"], seed=seed)


def _reference_scores(reference: Reference | None, task: str, rows: pd.DataFrame,
                      settings: TrainingSettings) -> np.ndarray | None:
    if reference is None:
        return None
    return reference(task, rows[[ACCOUNT_ID, AS_OF]], horizon_days=settings.horizon_days,
                     upsell_min_growth=settings.upsell_min_growth)


def backtest(
    task: str,
    settings: TrainingSettings,
    n_cutoffs: int = 3,
    *,
    product: str | None = None,
    renewal_only: bool = False,
    progress: Progress | None = None,
    reference: Reference | None = None,
) -> dict:
    """Rolling backtest: refit at ``n_cutoffs`` expanding-window cut-offs (one test date each,
    each cut-off trained on more dates than the one before) and pool their out-of-time
    predictions. Registers nothing.

    Returns each cut-off's metrics (model, baselines, reference), the pooled metrics of every
    candidate with bootstrap intervals over accounts (an account's rows from every cut-off
    resampled together), the paired differences model - each other candidate, and a verdict on
    the model against the better of its baselines.
    """
    from features.validation import load_tables
    from training.split import rolling_backtest

    say = progress or (lambda message: log.info(message))
    tables = load_tables(settings.raw_dir)
    store = FeatureStore(settings.features_dir)
    observed = observed_dates(tables, store, settings.horizon_days,
                               catalogue_version(feature_groups(stored_spec(settings, store))))
    try:
        # like `train`: no validation block (the model is chosen by CV inside the training)
        splits = rolling_backtest(observed, settings.horizon_days, n_cutoffs, validation=0,
                                  test=1)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc
    cutoffs, pooled = [], []
    for i, split in enumerate(splits, 1):
        fit = fit_and_score(task, tables, store, split, settings, product=product,
                            renewal_only=renewal_only, reference=reference,
                            say=lambda m, i=i: say(f"cut-off {i}/{len(splits)}: {m}"))
        test = fit.parts["test"]
        trained_on = sorted({*split.train, *split.validation})  # the model trains on both
        cutoffs.append({"test": str(split.test[0]), "train_from": str(trained_on[0]),
                        "train_to": str(trained_on[-1]), "rows_test": len(test),
                        "positives": int(test["label"].sum()), "model": fit.metrics,
                        **fit.baselines, "oracle": fit.oracle})
        rows = pd.DataFrame({
            ACCOUNT_ID: test[ACCOUNT_ID].to_numpy(), "label": test["label"].to_numpy(),
            "value": test["value"].clip(lower=0).to_numpy() if "value" in test else np.nan,
            "exposure": test["arr_at_as_of"].to_numpy() if "arr_at_as_of" in test else np.nan,
            "model": fit.scores["model"],
            **{b: fit.scores[b] for b in fit.baselines if b in fit.scores}})
        oracle = _reference_scores(reference, task, test, settings)
        if oracle is not None:
            rows["oracle"] = oracle
        pooled.append(rows)
    return pool_backtest(cutoffs, pd.concat(pooled, ignore_index=True),
                         baselines=[b for b in pooled[0].columns if b in cutoffs[0]
                                    and b not in ("model", "oracle")],
                         seed=settings.seed)


def pool_backtest(cutoffs: list[dict], pooled: pd.DataFrame, baselines: list[str],
                  seed: int) -> dict:
    """The backtest's report from its cut-offs and their pooled test rows (``account_id``,
    ``label``, ``value``, ``exposure`` and one column of probabilities per candidate: ``model``,
    the ``baselines``, optionally ``oracle``); a candidate missing at some cut-off (NaN) is
    left out of the pooled comparison."""
    from training.metrics import evaluate
    from training.uncertainty import bootstrap

    candidates = ["model", *baselines] + (["oracle"] if "oracle" in pooled else [])
    candidates = [c for c in candidates if pooled[c].notna().all()]
    y = pooled["label"].to_numpy()
    value = pooled["value"].to_numpy() if pooled["value"].notna().all() else None
    exposure = pooled["exposure"].to_numpy() if pooled["exposure"].notna().all() else None
    if value is None:
        exposure = None
    uncertainty = bootstrap(
        y, {c: pooled[c].to_numpy() for c in candidates}, pooled[ACCOUNT_ID].to_numpy(),
        value=value, exposure=exposure, pairs=[("model", c) for c in candidates[1:]],
        seed=seed)
    points = {c: evaluate(y, pooled[c].to_numpy(), value=value, exposure=exposure)
              for c in candidates}
    present = [b for b in baselines if b in candidates]
    best = max(present, key=lambda b: points[b]["roc_auc"]) if present else None
    verdict, versus = "no baseline to compare with", None
    if best is not None:
        versus = uncertainty.differences[f"model - {best}"]["roc_auc"]
        if versus.lo > 0:
            verdict = (f"the model beats the better baseline ({best}) by {versus.value:+.4f} "
                       f"ROC AUC [{versus.lo:+.4f}, {versus.hi:+.4f}]")
        elif versus.hi < 0:
            verdict = (f"the model loses to the better baseline ({best}) by "
                       f"{versus.value:+.4f} ROC AUC [{versus.lo:+.4f}, {versus.hi:+.4f}]")
        else:
            verdict = (f"not distinguishable from the better baseline ({best}): "
                       f"{versus.value:+.4f} ROC AUC [{versus.lo:+.4f}, {versus.hi:+.4f}]")
    spread = uncertainty.as_json()
    return {
        "cutoffs": cutoffs,
        "pooled": {"rows": len(pooled), "accounts": int(pooled[ACCOUNT_ID].nunique()),
                   "positives": int(y.sum()), "metrics": points,
                   "intervals": spread["metrics"], "differences": spread["differences"],
                   "method": spread["method"]},
        "best_baseline": best,
        "versus_best_baseline": versus.as_dict() if versus is not None else None,
        "verdict": verdict,
    }


def _log_report(fit: Fitted, test: pd.DataFrame, y_test: np.ndarray) -> None:
    """The run's report plots (curves, calibration, lift, importance, SHAP) under ``report/``.

    Every plot that names features takes the names in the model's own column order
    (``fit.model.features``), the order its contributions come in."""
    import mlflow

    from training import models, plots

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        names = fit.model.features
        sample = models.to_model_frame(test.head(2000), fit.schema)
        contrib = fit.model.contributions(sample)
        imp_names, imp_values, measure = fit.model.importance(sample)
        plots.roc_pr_curves(y_test, fit.scores, out / "roc_pr.png")
        plots.calibration_curve(y_test, fit.raw_test, fit.scores["model"],
                                out / "calibration.png")
        plots.lift_gain_chart(y_test, fit.scores["model"], out / "lift_gain.png")
        plots.feature_importance(list(imp_names), imp_values, out / "feature_importance.png",
                                 measure=measure)
        plots.shap_summary(names, contrib, test[names].head(2000), out / "shap_summary.png")
        mlflow.log_artifacts(str(out), "report")


def selection_metrics(selection: dict) -> dict[str, float]:
    """Each candidate's pooled out-of-fold scores and its log-loss difference to the best (with
    its standard error) as MLflow metrics ``cv_<candidate>_<name>``; the per-fold scores are in
    selection.json."""
    out = {}
    for name, c in selection.get("candidates", {}).items():
        for key in ("log_loss", "roc_auc", "difference_to_best", "standard_error"):
            if _finite(c.get(key)):
                out[f"cv_{name}_{key}"] = float(c[key])
    return out


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and bool(np.isfinite(value))


def _champion_on_window(champion, test: pd.DataFrame, y: np.ndarray
                        ) -> tuple[np.ndarray | None, dict | None]:
    """The current champion's probabilities and metrics on the new run's test window
    ((None, None): no champion).

    A champion that cannot score these rows (a changed feature catalogue) is compared by the
    test metrics it logged, which is the best evidence left (no probabilities: no paired
    comparison); that is said in the log.
    """
    if champion is None:
        return None, None
    import mlflow

    from training.metrics import evaluate

    try:
        model = mlflow.pyfunc.load_model(f"models:/{champion.name}/{champion.version}")
        p = model.predict(test)["probability"].to_numpy()  # feature columns only
        return p, evaluate(y, p)
    except Exception as exc:  # noqa: BLE001 - any failure to score means: fall back
        log.warning("champion v%s could not score the test window (%s); using its logged "
                    "metrics", champion.version, exc)
        run = mlflow.get_run(champion.run_id)
        logged = run.data.metrics
        return None, {"roc_auc": logged.get("test_roc_auc", 0.0),
                      "ece": logged.get("test_ece", 1.0)}


def summary_json(result: TrainResult) -> str:
    return json.dumps(result.as_json(), indent=2, default=str)
