"""``propensity monitor``'s work: one result (a JSON-able dict) for one date, saved under
``<data_dir>/monitoring/`` for the API and the metrics, and logged to MLflow.

Inputs: the champions (through MLflow, with their training window in ``meta["window"]``), the
feature store (the training window's snapshots and the snapshot at the date), the score history
(every past run) and the raw tables (the labels of the runs whose horizon has passed before the
export's extraction time, by ``features.labels``).

Churn and upsell have one probability per account, read from the history. Cross-sell has one
per (account, product not held), which the history does not keep: each run's snapshot is scored
again by the model version the run recorded (``serving.monitoring.cross_sell``). Its score
drift and performance rows carry ``task: "cross-sell"``, pooled over products, plus one row per
product with a ``product`` field; the same metric and bootstrap code serves every task (for
cross-sell's pooled rows the bootstrap draws accounts with all their products).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from features.catalogue import ACCOUNT_ID, CANDIDATE_PRODUCT
from serving.monitoring import cross_sell as xs
from serving.monitoring import performance as perf
from serving.monitoring.drift import OVERALL, FeatureInfo, Thresholds, input_drift
from serving.monitoring.latest import LATEST
from serving.monitoring.scores import SCORE_COLUMNS, score_psi, tier_shares
from serving.registry import CROSS_SELL
from serving.settings import ServingSettings

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
#: The tasks with one probability per account, read from the history (cross-sell: see above).
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
    #: cross-sell pairs per run date (None: not scorable), filled as parts ask for them
    pairs: dict = field(default_factory=dict)
    pair_notes: list = field(default_factory=list)
    loaded: dict = field(default_factory=dict)  # cross-sell models of past runs, by URI

    @property
    def cross_sell(self):
        """The served cross-sell model, or None (cross-sell is optional)."""
        return self.models.get(CROSS_SELL)


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
    return Context(settings, {t: models[t] for t in (*TASKS, CROSS_SELL) if t in models},
                   store,
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
    for model in ctx.models.values():  # the product offered is no snapshot feature
        for feature, share in zip(model.features,
                                  importance_of(model.model, (CANDIDATE_PRODUCT,)), strict=True):
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
    each earlier run of the history; churn risk tiers likewise. Cross-sell: pooled and per
    product, and the share of accounts with a likely cross-sell offer (``cross_sell_offers``)."""
    t = thresholds(ctx.settings)
    accounts = reference[ACCOUNT_ID].nunique()
    now = {task: _run_scores(ctx, ctx.as_of, task, current) for task in TASKS}
    trained = {task: probabilities(ctx.models[task], reference) for task in TASKS}
    vs_training = [{"task": task, **score_psi(trained[task], now[task], t, accounts)}
                   for task in TASKS]
    cross_now = run_pairs(ctx, ctx.as_of)
    cross_trained = None
    offers = []
    if cross_now is not None:
        cross_trained = xs.stacked_pair_scores(ctx.cross_sell, reference, ctx.tables)
        vs_training += _pair_psi(cross_trained, cross_now, t, accounts)
        offers.append({"as_of": "training window",
                       **xs.offer_shares(cross_trained, len(reference))})
    previous = []
    tiers = [{"as_of": "training window", **tier_shares(trained["churn"])}]
    for day in [d for d in ctx.history.dates() if d < ctx.as_of]:
        run = ctx.history.read(day, columns=list(SCORE_COLUMNS.values()))
        for task, column in SCORE_COLUMNS.items():
            previous.append({"as_of": day.isoformat(), "task": task,
                             **score_psi(run[column].to_numpy(float), now[task], t)})
        tiers.append({"as_of": day.isoformat(),
                      **tier_shares(run["churn_probability"].to_numpy(float))})
        pairs = run_pairs(ctx, day) if cross_now is not None else None
        if pairs is not None:
            previous += [{"as_of": day.isoformat(), **r}
                         for r in _pair_psi(pairs, cross_now, t, pairs[ACCOUNT_ID].nunique())]
            offers.append({"as_of": day.isoformat(), **xs.offer_shares(pairs, len(run))})
    tiers.append({"as_of": ctx.as_of.isoformat(), **tier_shares(now["churn"])})
    if cross_now is not None:
        offers.append({"as_of": ctx.as_of.isoformat(),
                       **xs.offer_shares(cross_now, len(now["churn"]))})
    return {"vs_training": vs_training, "vs_previous": previous, "risk_tiers": tiers,
            "cross_sell_offers": offers}


def _pair_psi(reference: pd.DataFrame, current: pd.DataFrame, t: Thresholds,
              reference_accounts: int) -> list[dict]:
    """Cross-sell's score PSI pooled over products, then per product. The pooled rows of one
    account are not independent: its noise level counts accounts, not pairs."""
    def psi_of(ref: pd.DataFrame, cur: pd.DataFrame, ref_accounts: int) -> dict:
        return score_psi(ref[xs.P].to_numpy(float), cur[xs.P].to_numpy(float), t,
                         ref_accounts, cur[ACCOUNT_ID].nunique())

    rows = [{"task": CROSS_SELL, **psi_of(reference, current, reference_accounts)}]
    for product, cur in current.groupby(xs.PRODUCT, sort=True):
        ref = reference[reference[xs.PRODUCT] == product]
        rows.append({"task": CROSS_SELL, "product": product,
                     **psi_of(ref, cur, ref[ACCOUNT_ID].nunique())})
    return rows


def _run_scores(ctx: Context, day: date, task: str, snapshot: pd.DataFrame) -> np.ndarray:
    """The history's probabilities of ``day`` when it has that run, else the snapshot scored."""
    if day in ctx.history.dates():
        return ctx.history.read(day, columns=[SCORE_COLUMNS[task]])[SCORE_COLUMNS[task]] \
            .to_numpy(float)
    return probabilities(ctx.models[task], snapshot)


# --- cross-sell's pairs -----------------------------------------------------------------------
def run_pairs(ctx: Context, day: date) -> pd.DataFrame | None:
    """The (account, product) pairs the run of ``day`` scored, with ``p`` and ``exposure``
    (re-scored by the run's cross-sell model version; for a date without a run, by the
    champion). None, with a note saying why, when there are none to score. Cached per date."""
    if ctx.cross_sell is None:
        return None
    if day not in ctx.pairs:
        ctx.pairs[day] = _score_pairs(ctx, day)
    return ctx.pairs[day]


def _score_pairs(ctx: Context, day: date) -> pd.DataFrame | None:
    from serving.registry import ModelLoadError, load_model

    model, in_history = ctx.cross_sell, day in ctx.history.dates()
    if in_history:
        entry = (ctx.history.note(day).get("models") or {}).get(CROSS_SELL)
        if not entry:
            ctx.pair_notes.append(f"the run of {day} scored no cross-sell (no cross-sell model "
                                  "then): no cross-sell drift or performance for it")
            return None
        if entry.get("uri") and entry["uri"] != model.uri:
            if entry["uri"] not in ctx.loaded:
                try:
                    ctx.loaded[entry["uri"]] = load_model(CROSS_SELL, entry["uri"],
                                                          ctx.settings.tracking_uri)
                except ModelLoadError as exc:
                    ctx.loaded[entry["uri"]] = None
                    ctx.pair_notes.append(f"the run of {day}: its cross-sell model cannot be "
                                          f"loaded again ({exc}): no cross-sell rows for it")
            model = ctx.loaded[entry["uri"]]
            if model is None:
                return None
    if day not in ctx.store.dates():
        ctx.pair_notes.append(
            f"the run of {day}: its snapshot is no longer in {ctx.store.root}, so its "
            "cross-sell pairs cannot be scored again (`propensity features build --as-of "
            f"{day}`)")
        return None
    pairs = xs.pair_scores(model, ctx.store.read(day), xs.held_pairs(ctx.tables, day))
    pairs["exposure"] = xs.exposure(model, pairs[xs.PRODUCT])
    if in_history:
        gap = xs.next_best_gap(pairs, ctx.history.read(day, columns=[ACCOUNT_ID, xs.RECORDED]))
        if not np.isnan(gap) and gap > xs.SAME_SCORE:
            ctx.pair_notes.append(
                f"the run of {day}: cross-sell re-scored by {model.uri} differs from the "
                f"next-best probability the run recorded by up to {gap:.3g} (snapshot rebuilt "
                "since?): its cross-sell rows are the model's scores of today's snapshot")
    return pairs


# --- performance ------------------------------------------------------------------------------
def performance_part(ctx: Context) -> tuple[list[dict], list[str]]:
    """One row per (history run up to the date, task) and, for cross-sell, per product too:
    realised where matured, estimated always; notes on what could not be evaluated."""
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
            row.update(_run_performance(ctx, task, day, horizon, _one_per_account(run, task),
                                        matured))
            rows.append(row)
        rows += _cross_sell_performance(ctx, day, versions)
    if not any(r["matured"] for r in rows):
        first = min(r["matures_on"] for r in rows)
        notes.append(f"no run has matured yet (labels need the horizon to pass before the "
                     f"data's extraction): the first matures on {first}; estimates only")
    return rows, notes


def _one_per_account(run: pd.DataFrame, task: str) -> pd.DataFrame:
    """A run's accounts with the task's probability as ``p`` (unscored accounts left out)."""
    scored = run.assign(p=run[SCORE_COLUMNS[task]].astype(float))
    return scored[scored["p"].notna()].reset_index(drop=True)


def _cross_sell_performance(ctx: Context, day: date, versions: dict) -> list[dict]:
    """Cross-sell's rows of one run: pooled over the pairs it scored, then one per product."""
    from features.labels import horizon_date, label_window_observed

    pairs = run_pairs(ctx, day)
    if pairs is None or pairs.empty:
        return []
    horizon = int(ctx.cross_sell.meta.get("horizon_days") or 90)
    matured = label_window_observed(ctx.tables, day, horizon)
    base = {"as_of": day.isoformat(), "task": CROSS_SELL,
            "model_version": versions.get(CROSS_SELL), "horizon_days": horizon,
            "matures_on": horizon_date(day, horizon).isoformat(), "matured": matured}
    labels = _labels(ctx, CROSS_SELL, day, horizon) if matured else None
    rows = [{**base, "pairs": int(len(pairs)),
             **_run_performance(ctx, CROSS_SELL, day, horizon, pairs, matured, labels,
                                by_account=True)}]
    for product, part in pairs.groupby(xs.PRODUCT, sort=True):
        rows.append({**base, "product": product, "pairs": int(len(part)),
                     **_run_performance(ctx, CROSS_SELL, day, horizon,
                                        part.reset_index(drop=True), matured, labels)})
    return rows


def _run_performance(ctx: Context, task: str, day: date, horizon: int, scored: pd.DataFrame,
                     matured: bool, labels: pd.DataFrame | None = None,
                     by_account: bool = False) -> dict:
    """Estimate and, when matured, realised metrics of ``scored`` rows (``account_id``,
    ``segment``, ``p``; cross-sell: ``product``, ``exposure``). ``by_account``: an account has
    several rows, and the bootstrap draws accounts with all of them."""
    s = ctx.settings
    p = scored["p"].to_numpy(float)
    est = perf.estimate(p, s.monitor_simulations, s.seed)
    out: dict = {"accounts": int(scored[ACCOUNT_ID].nunique()), "roc_auc": None,
                 "estimated_roc_auc": est.roc_auc, "estimated_roc_auc_sd": est.roc_auc_sd,
                 "expected_ece": est.expected_ece, "mean_probability": est.positive_rate,
                 "ece": None}
    labelled = None
    if matured:
        labelled = _labelled(ctx, task, day, horizon, scored, labels)
        out.update(_realised(labelled, s, by_account))
    out["segments"] = _segments(scored, labelled, s, by_account)
    return _clean(out)


def _labels(ctx: Context, task: str, day: date, horizon: int) -> pd.DataFrame:
    from features.labels import make_labels

    kwargs = {"min_growth": ctx.settings.upsell_min_growth} if task == "upsell" else {}
    return make_labels(task, ctx.tables, day, horizon, **kwargs)


def _labelled(ctx: Context, task: str, day: date, horizon: int, scored: pd.DataFrame,
              labels: pd.DataFrame | None = None) -> pd.DataFrame:
    """The scored rows with their label, value and exposure (churn, upsell: ARR at as_of;
    cross-sell: what the model prices an adoption of the product at)."""
    labels = _labels(ctx, task, day, horizon) if labels is None else labels
    keys = [ACCOUNT_ID, xs.PRODUCT] if task == CROSS_SELL else [ACCOUNT_ID]
    frame = scored.merge(labels[[*keys, "label", "value", "arr_at_as_of"]], on=keys)
    if "exposure" not in frame.columns:
        frame["exposure"] = frame["arr_at_as_of"]
    return frame


def _arrays(frame: pd.DataFrame) -> tuple[np.ndarray, ...]:
    return (frame["label"].to_numpy(float), frame["p"].to_numpy(float),
            frame["value"].clip(lower=0).to_numpy(float),
            frame["exposure"].fillna(0).clip(lower=0).to_numpy(float))


def _realised(frame: pd.DataFrame, s: ServingSettings, by_account: bool = False) -> dict:
    y, p, value, exposure = _arrays(frame)
    out: dict = {"labelled": int(len(y)), "positives": int(y.sum())}
    if len(y) == 0 or y.min() == y.max():
        out["realised_note"] = "a single class among the labelled accounts: AUC undefined"
        return out
    out.update(perf.realised_metrics(y, p, value, exposure))
    out["intervals"] = perf.bootstrap_intervals(
        y, p, value, exposure, s.monitor_bootstrap, s.seed,
        accounts=frame[ACCOUNT_ID].to_numpy() if by_account else None)
    out["calibration_curve"] = perf.calibration_curve(y, p)
    return out


def _segments(scored: pd.DataFrame, labelled: pd.DataFrame | None, s: ServingSettings,
              by_account: bool = False) -> list[dict]:
    """Per segment: the estimate, and where labelled the realised metrics with intervals."""
    if "segment" not in scored.columns:
        return []
    out = []
    for name, part in scored.groupby(scored["segment"].astype(str), sort=True):
        p = part["p"].to_numpy(float)
        est = perf.estimate(p, s.monitor_simulations, s.seed)
        row = {"segment": name, "accounts": int(part[ACCOUNT_ID].nunique()),
               "estimated_roc_auc": est.roc_auc, "estimated_roc_auc_sd": est.roc_auc_sd,
               "roc_auc": None, "ece": None}
        if labelled is not None:
            realised = _realised(labelled[labelled["segment"].astype(str) == name], s,
                                 by_account)
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
    notes += list(dict.fromkeys(ctx.pair_notes))  # a run's note once, however often asked
    if ctx.cross_sell is None:
        notes.append("no cross-sell model is served: cross-sell is not monitored (train one "
                     "with `propensity train cross-sell`)")
    return _clean({
        "as_of": ctx.as_of.isoformat(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "models": {task: model_summary(m, registered_at(m)) for task, m in ctx.models.items()},
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


def model_summary(model, registered: str | None) -> dict:
    """What the triggers read of a served model: its identity, training window, test metrics
    and registration; a recalibrated version also its trees' registration (the age trigger
    counts from it: recalibrating does not make a model young)."""
    return {"uri": model.uri, "version": model.version, "run_id": model.run_id,
            "window": model.meta.get("window"),
            "test_metrics": model.meta.get("test_metrics") or {},
            "registered_at": registered,
            "trees_registered_at": (model.meta.get("recalibration") or {}).get(
                "trees_registered_at")}


def registered_at(model) -> str | None:
    """When the model version was registered (None for a URI outside the registry)."""
    if not model.uri.startswith("models:/") or model.version is None:
        return None
    import mlflow

    name = model.uri.removeprefix("models:/").split("/")[0]
    found = mlflow.MlflowClient().get_model_version(name, model.version)
    return datetime.fromtimestamp(found.creation_timestamp / 1000, UTC).isoformat(
        timespec="seconds")


def _metric_name(name: str, product: str | None) -> str:
    """An MLflow metric key, per product for cross-sell's product rows (``run_roc_auc.
    analytics``); characters MLflow refuses in a key become ``_``."""
    if product is None:
        return name
    return f"{name}.{re.sub(r'[^A-Za-z0-9_./ -]', '_', product)}"


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
                metrics[_metric_name("score_psi_vs_training", row.get("product"))] = row["psi"]
        with mlflow.start_run(experiment_id=experiment_id,
                              run_name=f"monitor {result['as_of']}") as run:
            mlflow.set_tags({"monitor": "true", "task": task, "as_of": result["as_of"],
                             "registered_model": name, "model_version": str(model["version"])})
            mlflow.log_metrics(metrics)
            for row in (r for r in result["performance"] if r["task"] == task):
                step = date.fromisoformat(row["as_of"]).toordinal()  # one step per score run
                mlflow.log_metrics({_metric_name(f"run_{key}", row.get("product")): row[key]
                                    for key in ("roc_auc", "estimated_roc_auc", "ece",
                                                "lift_at_10")
                                    if row.get(key) is not None}, step=step)
            mlflow.log_dict(result, "monitor.json")
            run_ids.append(run.info.run_id)
    return run_ids
