"""``propensity monitor``'s work: one result (a JSON-able dict) for one date, saved under
``<data_dir>/monitoring/`` for the API and the metrics, and logged to MLflow.

Inputs: the champions (through MLflow, with their training window in ``meta["window"]``), the
feature store (the training window's snapshots and the snapshot at the date), the score history
(every past run) and the raw tables (the labels of the runs whose horizon has passed before the
export's extraction time, by ``features.labels``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from features.catalogue import ACCOUNT_ID
from serving.monitoring import performance as perf
from serving.monitoring.drift import OVERALL, FeatureInfo, Thresholds, input_drift
from serving.monitoring.latest import LATEST
from serving.monitoring.scores import SCORE_COLUMNS, score_psi, tier_shares
from serving.settings import ServingSettings

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
#: The tasks monitored: one probability per account, labels from ``features.labels``.
TASKS = tuple(SCORE_COLUMNS)


class MonitorError(RuntimeError):
    """The monitor cannot run; the message says what is missing and what to do."""


@dataclass(frozen=True)
class Context:
    """What one monitor run reads, loaded once."""

    settings: ServingSettings
    models: dict  # task -> serving.registry.LoadedModel
    store: object  # features.store.FeatureStore
    history: object  # serving.history.ScoreHistory
    tables: object  # features.sources.RawTables
    as_of: date


def thresholds(settings: ServingSettings) -> Thresholds:
    return Thresholds(settings.drift_psi_watch, settings.drift_psi_alert,
                      settings.drift_confidence)


def training_dates(model, store_dates: list[date]) -> list[date]:
    """The feature store's snapshot dates inside the model's training window."""
    window = model.meta.get("window") or {}
    if not window.get("train_from") or not window.get("train_to"):
        raise MonitorError(f"{model.task} model {model.uri} records no training window "
                           "(meta['window']): retrain it with `propensity train`")
    start, end = (date.fromisoformat(window[k]) for k in ("train_from", "train_to"))
    return [d for d in store_dates if start <= d <= end]


def load_context(settings: ServingSettings, as_of: date | None) -> Context:
    from features.store import FeatureStore
    from features.validation import load_tables
    from serving.batch import BatchError, served_models
    from serving.history import ScoreHistory, history_dir

    try:
        models = served_models(settings)
    except BatchError as exc:
        raise MonitorError(str(exc)) from exc
    store = FeatureStore(settings.features_dir)
    dates = store.dates()
    if not dates:
        raise MonitorError(f"no feature snapshots in {store.root}: run "
                           "`propensity features build`")
    day = as_of or dates[-1]
    if day not in dates:
        raise MonitorError(f"no feature snapshot for as_of {day} in {store.root}: run "
                           f"`propensity features build --as-of {day}`")
    return Context(settings, {t: models[t] for t in TASKS}, store,
                   ScoreHistory(history_dir(settings.data_dir)), load_tables(settings.raw_dir),
                   day)


def catalogue(ctx: Context) -> list[FeatureInfo]:
    from features.build import feature_groups
    from features.event_types import stored_spec

    spec = stored_spec(ctx.settings, ctx.store, ctx.as_of)
    return [FeatureInfo(f.name, f.family, f.source, f.dtype != "string")
            for g in feature_groups(spec) for f in g.features]


def reference_frame(ctx: Context) -> tuple[pd.DataFrame, list[date]]:
    """The churn champion's training-window snapshots, stacked (a seeded sample of at most
    ``monitor_reference_rows`` rows)."""
    dates = training_dates(ctx.models["churn"], ctx.store.dates())
    if not dates:
        window = ctx.models["churn"].meta["window"]
        raise MonitorError(
            f"the training window {window['train_from']} .. {window['train_to']} of "
            f"{ctx.models['churn'].uri} has no snapshot in {ctx.store.root}: rebuild it with "
            f"`propensity features build --from {window['train_from']} --to "
            f"{window['train_to']}`")
    frame = pd.concat([ctx.store.read(d) for d in dates], ignore_index=True)
    if len(frame) > ctx.settings.monitor_reference_rows:
        frame = frame.sample(ctx.settings.monitor_reference_rows,
                             random_state=ctx.settings.seed, ignore_index=True)
    return frame, dates


def importance(ctx: Context) -> dict[str, float]:
    """Each feature's largest share of a monitored model's importance (split gain)."""
    from serving.inputs import importance_of

    out: dict[str, float] = {}
    for model in ctx.models.values():
        for feature, share in zip(model.features, importance_of(model.model), strict=True):
            out[feature] = max(out.get(feature, 0.0), float(share))
    return out


def probabilities(model, frame: pd.DataFrame) -> np.ndarray:
    m = model.model
    return m.probability_matrix(m.matrix(frame), threads=os.cpu_count() or 1)


# --- the three parts --------------------------------------------------------------------------
def drift_part(ctx: Context, reference: pd.DataFrame, current: pd.DataFrame,
               weights: dict[str, float]) -> tuple[list[dict], list[dict]]:
    """Overall rows (one per feature, with the segments on alert) and the segments' rows."""
    rows = input_drift(catalogue(ctx), reference, current, thresholds(ctx.settings),
                       present=ctx.tables.present)
    overall, segments = [], []
    alerting: dict[str, list[str]] = {}
    for r in rows:
        if r.segment != OVERALL and r.alert:
            alerting.setdefault(r.feature, []).append(r.segment)
    for r in rows:
        row = {**_clean(r.as_dict()), "importance": round(weights.get(r.feature, 0.0), 6)}
        if r.segment == OVERALL:
            row["segments_alerting"] = alerting.get(r.feature, [])
            overall.append(row)
        else:
            segments.append(row)
    return overall, segments


def score_part(ctx: Context, reference: pd.DataFrame, current: pd.DataFrame) -> dict:
    """Probabilities now against the training window's (scored by the same models) and against
    each earlier run of the history; churn risk tiers likewise."""
    t = thresholds(ctx.settings)
    accounts = reference[ACCOUNT_ID].nunique()
    now = {task: _run_scores(ctx, ctx.as_of, task, current) for task in TASKS}
    trained = {task: probabilities(ctx.models[task], reference) for task in TASKS}
    vs_training = [{"task": task, **score_psi(trained[task], now[task], t, accounts)}
                   for task in TASKS]
    previous = []
    tiers = [{"as_of": "training window", **tier_shares(trained["churn"])}]
    for day in [d for d in ctx.history.dates() if d < ctx.as_of]:
        run = ctx.history.read(day, columns=list(SCORE_COLUMNS.values()))
        for task, column in SCORE_COLUMNS.items():
            previous.append({"as_of": day.isoformat(), "task": task,
                             **score_psi(run[column].to_numpy(float), now[task], t)})
        tiers.append({"as_of": day.isoformat(),
                      **tier_shares(run["churn_probability"].to_numpy(float))})
    tiers.append({"as_of": ctx.as_of.isoformat(), **tier_shares(now["churn"])})
    return {"vs_training": vs_training, "vs_previous": previous, "risk_tiers": tiers}


def _run_scores(ctx: Context, day: date, task: str, snapshot: pd.DataFrame) -> np.ndarray:
    """The history's probabilities of ``day`` when it has that run, else the snapshot scored."""
    if day in ctx.history.dates():
        return ctx.history.read(day, columns=[SCORE_COLUMNS[task]])[SCORE_COLUMNS[task]] \
            .to_numpy(float)
    return probabilities(ctx.models[task], snapshot)


def performance_part(ctx: Context) -> tuple[list[dict], list[str]]:
    """One row per (history run up to the date, task): realised where matured, estimated
    always; notes on what could not be evaluated."""
    from features.labels import horizon_date, label_window_observed

    runs = [d for d in ctx.history.dates() if d <= ctx.as_of]
    notes = []
    if not runs:
        notes.append(f"no score history in {ctx.history.root} up to {ctx.as_of}: performance "
                     "needs past runs (`propensity run`, or `propensity score --out "
                     f"{ctx.history.root}`)")
        return [], notes
    rows = []
    for day in runs:
        run = ctx.history.read(day)
        versions = ctx.history.model_versions(day)
        for task in TASKS:
            horizon = int(ctx.models[task].meta.get("horizon_days") or 90)
            matured = label_window_observed(ctx.tables, day, horizon)
            row = {"as_of": day.isoformat(), "task": task, "model_version": versions.get(task),
                   "horizon_days": horizon, "matures_on": horizon_date(day, horizon).isoformat(),
                   "matured": matured}
            row.update(_run_performance(ctx, task, day, horizon, run, matured))
            rows.append(row)
    if not any(r["matured"] for r in rows):
        first = min(r["matures_on"] for r in rows)
        notes.append(f"no run has matured yet (labels need the horizon to pass before the "
                     f"data's extraction): the first matures on {first}; estimates only")
    return rows, notes


def _run_performance(ctx: Context, task: str, day: date, horizon: int, run: pd.DataFrame,
                     matured: bool) -> dict:
    s = ctx.settings
    p = run[SCORE_COLUMNS[task]].to_numpy(float)
    known = ~np.isnan(p)
    run, p = run[known], p[known]
    est = perf.estimate(p, s.monitor_simulations, s.seed)
    out: dict = {"accounts": int(len(p)), "roc_auc": None, "estimated_roc_auc": est.roc_auc,
                 "estimated_roc_auc_sd": est.roc_auc_sd, "expected_ece": est.expected_ece,
                 "mean_probability": est.positive_rate, "ece": None}
    labelled = None
    if matured:
        labelled = _labelled(ctx, task, day, horizon, run)
        out.update(_realised(labelled, s))
    out["segments"] = _segments(run, labelled, task, s)
    return _clean(out)


def _labelled(ctx: Context, task: str, day: date, horizon: int, run: pd.DataFrame
              ) -> pd.DataFrame:
    """The run's accounts with their label, value and exposure (ARR at as_of)."""
    from features.labels import make_labels

    kwargs = {"min_growth": ctx.settings.upsell_min_growth} if task == "upsell" else {}
    labels = make_labels(task, ctx.tables, day, horizon, **kwargs)
    frame = run.merge(labels[[ACCOUNT_ID, "label", "value", "arr_at_as_of"]], on=ACCOUNT_ID)
    frame["p"] = frame[SCORE_COLUMNS[task]].astype(float)
    return frame


def _arrays(frame: pd.DataFrame) -> tuple[np.ndarray, ...]:
    return (frame["label"].to_numpy(float), frame["p"].to_numpy(float),
            frame["value"].clip(lower=0).to_numpy(float),
            frame["arr_at_as_of"].fillna(0).clip(lower=0).to_numpy(float))


def _realised(frame: pd.DataFrame, s: ServingSettings) -> dict:
    y, p, value, exposure = _arrays(frame)
    out: dict = {"labelled": int(len(y)), "positives": int(y.sum())}
    if len(y) == 0 or y.min() == y.max():
        out["realised_note"] = "a single class among the labelled accounts: AUC undefined"
        return out
    out.update(perf.realised_metrics(y, p, value, exposure))
    out["intervals"] = perf.bootstrap_intervals(y, p, value, exposure, s.monitor_bootstrap,
                                                s.seed)
    out["calibration_curve"] = perf.calibration_curve(y, p)
    return out


def _segments(run: pd.DataFrame, labelled: pd.DataFrame | None, task: str,
              s: ServingSettings) -> list[dict]:
    """Per segment: the estimate, and where labelled the realised metrics with intervals."""
    if "segment" not in run.columns:
        return []
    out = []
    for name, part in run.groupby(run["segment"].astype(str), sort=True):
        p = part[SCORE_COLUMNS[task]].to_numpy(float)
        est = perf.estimate(p, s.monitor_simulations, s.seed)
        row = {"segment": name, "accounts": int(len(p)), "estimated_roc_auc": est.roc_auc,
               "estimated_roc_auc_sd": est.roc_auc_sd, "roc_auc": None, "ece": None}
        if labelled is not None:
            realised = _realised(labelled[labelled["segment"].astype(str) == name], s)
            realised.pop("calibration_curve", None)
            row.update(realised)
        out.append(_clean(row))
    return out


def _clean(value):
    """JSON-safe: NaN and infinities become None, numpy numbers plain ones."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


# --- the whole run ----------------------------------------------------------------------------
def monitor(settings: ServingSettings, as_of: date | None = None,
            progress: Progress | None = None) -> dict:
    """Input drift, score drift and performance at ``as_of`` (default: the newest snapshot)."""
    say = progress or (lambda message: log.info(message))
    say("loading models, snapshots and raw tables")
    ctx = load_context(settings, as_of)
    reference, window = reference_frame(ctx)
    current = ctx.store.read(ctx.as_of)
    weights = importance(ctx)
    say(f"input drift: {len(window)} training snapshots against {ctx.as_of}")
    drift, by_segment = drift_part(ctx, reference, current, weights)
    say("score drift")
    scores = score_part(ctx, reference, current)
    say("performance of the history's runs")
    performance, notes = performance_part(ctx)
    return _clean({
        "as_of": ctx.as_of.isoformat(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "models": {task: {"uri": m.uri, "version": m.version, "run_id": m.run_id,
                          "window": m.meta.get("window"),
                          "test_metrics": m.meta.get("test_metrics") or {},
                          "registered_at": registered_at(m)}
                   for task, m in ctx.models.items()},
        "training_window": [d.isoformat() for d in window],
        "thresholds": {"psi_watch": settings.drift_psi_watch,
                       "psi_alert": settings.drift_psi_alert,
                       "confidence": settings.drift_confidence},
        "drift": drift, "drift_by_segment": by_segment,
        "missing_sources": sorted({r["feature"] for r in drift if not r["source_present"]}),
        "score_drift": scores, "performance": performance, "notes": notes,
    })


def monitor_and_save(settings: ServingSettings, as_of: date | None = None, *,
                     log_mlflow: bool = True, progress: Progress | None = None) -> dict:
    """What ``propensity monitor`` (and a daily run after its scoring) does: the result with
    each task's retraining decision under ``triggers``, saved under ``monitoring_dir`` and
    logged to MLflow. The caller acts on ``result["triggers"][task]["retrain"]``."""
    from serving.monitoring.triggers import decide_all

    result = monitor(settings, as_of, progress)
    result["triggers"] = {t: d.as_dict() for t, d in decide_all(result, settings).items()}
    save(result, settings.monitoring_dir)
    if log_mlflow:
        log_to_mlflow(result, settings)
    return result


def registered_at(model) -> str | None:
    """When the model version was registered (None for a URI outside the registry)."""
    if not model.uri.startswith("models:/") or model.version is None:
        return None
    import mlflow

    name = model.uri.removeprefix("models:/").split("/")[0]
    found = mlflow.MlflowClient().get_model_version(name, model.version)
    return datetime.fromtimestamp(found.creation_timestamp / 1000, UTC).isoformat(
        timespec="seconds")


# --- where results go -------------------------------------------------------------------------
def save(result: dict, folder: Path) -> Path:
    """``monitor-<as_of>.json`` and ``latest.json``, each replaced whole (write, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=1)
    path = folder / f"monitor-{result['as_of']}.json"
    for target in (path, folder / LATEST):
        staging = target.with_suffix(f".tmp-{os.getpid()}")
        staging.write_text(text, encoding="utf-8")
        os.replace(staging, target)
    return path


def log_to_mlflow(result: dict, settings: ServingSettings) -> list[str]:
    """One MLflow run per monitored model, in the experiment of the run that logged it, tagged
    with the model version: drift and performance figures as metrics, the whole result as an
    artifact. A model from outside the registry (no run) is not logged against."""
    import mlflow

    from features.tracking_store import use_store
    from serving.registry import registered_name

    use_store(settings.tracking_uri)
    alerts = [r for r in result["drift"] if r["alert"] or r["segments_alerting"]]
    run_ids = []
    for task, model in result["models"].items():
        if not model.get("run_id"):
            continue
        name = registered_name(task)
        experiment_id = mlflow.get_run(model["run_id"]).info.experiment_id
        metrics = {"drift_alerts": len(alerts),
                   "max_feature_psi": max((r["psi"] or 0 for r in result["drift"]), default=0)}
        for row in result["score_drift"]["vs_training"]:
            if row["task"] == task and row["psi"] is not None:
                metrics["score_psi_vs_training"] = row["psi"]
        with mlflow.start_run(experiment_id=experiment_id,
                              run_name=f"monitor {result['as_of']}") as run:
            mlflow.set_tags({"monitor": "true", "task": task, "as_of": result["as_of"],
                             "registered_model": name, "model_version": str(model["version"])})
            mlflow.log_metrics(metrics)
            for row in (r for r in result["performance"] if r["task"] == task):
                step = date.fromisoformat(row["as_of"]).toordinal()  # one step per score run
                mlflow.log_metrics({f"run_{key}": row[key] for key in
                                    ("roc_auc", "estimated_roc_auc", "ece", "lift_at_10")
                                    if row.get(key) is not None}, step=step)
            mlflow.log_dict(result, "monitor.json")
            run_ids.append(run.info.run_id)
    return run_ids
