"""The steps of the daily run, each a plain function ``step(ctx) -> Outcome``.

A step first works out its inputs (fingerprints: the raw export, the snapshot's version, the
champions' versions), compares them with what the last finished run of the date recorded
(``ctx.previous``), and is skipped when they match and its output is still the one published;
``ctx.force`` redoes it. A step that cannot do its work raises :class:`StepFailed` naming the
cause; nothing it wrote is published half-way (snapshots and history partitions are swapped in
by one rename when complete).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

from serving.daily.manifest import folder_fingerprint, published_version, text_fingerprint
from serving.history import ScoreHistory, history_dir
from serving.settings import ServingSettings

log = logging.getLogger(__name__)

Status = Literal["done", "skipped"]
RELOAD_PATH = "/v1/admin/reload"


class StepFailed(RuntimeError):
    """A step cannot do its work; the message says why and what to do."""


@dataclass
class Outcome:
    """What a step did: ``done`` or ``skipped``, a line for people, and the record the run
    manifest keeps (inputs and outputs; None: nothing to keep)."""

    status: Status
    detail: str
    record: dict | None = None


@dataclass
class RunContext:
    """Everything a step needs: the settings, the date, the options, the previous run's
    records of this date, and what the steps of this run recorded so far."""

    settings: ServingSettings
    as_of: date
    engine: str = "duckdb"
    force: bool = False
    reasons: int = 3
    reload_url: str | None = None
    #: Trains a challenger of a task through the gate (the composition root wires training;
    #: serving may not import it): ``retrain(settings, task, reasons)`` -> a line saying what
    #: it registered and whether it was promoted. None: triggers are reported, not acted on.
    retrain: Callable[[ServingSettings, str, list[str]], str] | None = None
    #: Refits only the calibrator of a task's champion, as a new version through the gate, for
    #: a trigger on calibration alone: ``recalibrate(settings, task, reasons)`` -> a line. None:
    #: such a task is retrained in full by ``retrain`` instead.
    recalibrate: Callable[[ServingSettings, str, list[str]], str] | None = None
    no_retrain: bool = False  # --no-retrain
    #: The publish step's delivery (bulk files, webhooks): returns a line saying what it
    #: delivered. None: nothing to deliver, the step is skipped.
    deliver: Callable[[RunContext], str] | None = None
    previous: dict[str, dict] = field(default_factory=dict)
    records: dict[str, dict] = field(default_factory=dict)
    tables: Any = None  # the validated RawTables, handed from validate to build

    def current(self, step: str, inputs: dict, output_key: str | None = None,
                published: str | None = None) -> dict | None:
        """The previous record of ``step`` when it is still current: same inputs and (when
        ``output_key`` is given) its recorded output still the ``published`` one."""
        before = self.previous.get(step)
        if self.force or not before or before.get("inputs") != _plain(inputs):
            return None
        if output_key is not None and (
                published is None or before.get("outputs", {}).get(output_key) != published):
            return None
        return before


def _plain(value: dict) -> dict:
    """``value`` as it reads back from the JSON manifest (tuples become lists)."""
    return json.loads(json.dumps(value))


def _record(inputs: dict, outputs: dict) -> dict:
    return _plain({"inputs": inputs, "outputs": outputs})


# --- pull -------------------------------------------------------------------------------------
def pull(ctx: RunContext) -> Outcome:
    """A new raw export from the configured source (setting ``source``), ``raw`` pointed at
    it; skipped without a source, or when this date's pull is still what ``raw`` points at."""
    from features.mapping import MappingError, SourceError, load_mapping
    from features.pull import pull as pull_export

    settings = ctx.settings
    if not settings.source:
        return Outcome("skipped", "no source configured (setting source): using raw/ as it is")
    mapping_file = settings.source_mapping
    inputs = {"source": text_fingerprint(settings.source),
              "mapping": file_fingerprint(mapping_file)}
    raw_now = _real(settings.raw_dir)
    kept = ctx.current("pull", inputs, "export", raw_now)
    if kept:
        return Outcome("skipped", f"already pulled for {ctx.as_of}: raw/ -> {raw_now}", kept)
    try:
        mapping = load_mapping(mapping_file) if mapping_file else None
        result = pull_export(settings.source, settings.data_dir, mapping)
    except (SourceError, MappingError) as exc:
        raise StepFailed(str(exc)) from exc
    except OSError as exc:
        raise StepFailed(f"cannot write the export under {settings.data_dir}: "
                         f"{exc.strerror or exc}; raw/ is unchanged") from exc
    rows = sum(result.rows.values())
    return Outcome("done", f"{rows:,} rows, extracted_at {result.extracted_at} -> "
                           f"{result.export}",
                   _record(inputs, {"export": _real(settings.raw_dir),
                                    "extracted_at": result.extracted_at.isoformat(),
                                    "rows": result.rows}))


def file_fingerprint(path: Path | None) -> str | None:
    """A mapping file's content hash (None: no mapping)."""
    if path is None:
        return None
    try:
        return text_fingerprint(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise StepFailed(f"mapping {path}: cannot be read ({exc.strerror or exc})") from exc


def _real(path: Path) -> str | None:
    import os

    real = os.path.realpath(path)
    return real if os.path.isdir(real) else None


# --- validate ---------------------------------------------------------------------------------
def validate(ctx: RunContext) -> Outcome:
    """The raw export against the contract, and the date against its extraction time."""
    from features.build import SnapshotError, check_as_of
    from features.pipeline import open_validated, table_rows
    from features.sources import ContractError

    settings = ctx.settings
    inputs = {"raw": folder_fingerprint(settings.raw_dir)}
    if inputs["raw"] is None:
        raise StepFailed(f"no raw data at {settings.raw_dir}: configure a source (setting "
                         "source) or put the contract's tables there")
    kept = ctx.current("validate", inputs)
    if kept:
        return Outcome("skipped", "raw export unchanged since it was validated", kept)
    try:
        tables = open_validated(settings)
        check_as_of(tables.extracted_at, ctx.as_of)
    except ContractError as exc:
        problems = getattr(exc, "problems", None) or [str(exc)]
        raise StepFailed(f"{settings.raw_dir}: {len(problems)} problem(s): "
                         + "; ".join(problems)) from exc
    except SnapshotError as exc:
        raise StepFailed(str(exc)) from exc
    ctx.tables = tables
    rows = table_rows(tables)
    extracted = tables.extracted_at.isoformat() if tables.extracted_at else None
    return Outcome("done", f"{sum(r or 0 for r in rows.values()):,} rows in "
                           f"{sum(r is not None for r in rows.values())} tables pass the "
                           f"contract (extracted_at {extracted})",
                   _record(inputs, {"extracted_at": extracted, "rows": rows}))


# --- build ------------------------------------------------------------------------------------
def build(ctx: RunContext) -> Outcome:
    """The feature snapshot at the date (``features.pipeline``), swapped in when complete."""
    from features.build import SnapshotError
    from features.pipeline import build_snapshots, build_snapshots_spark
    from features.sources import ContractError
    from features.store import FeatureStore

    settings = ctx.settings
    store = FeatureStore(settings.features_dir)
    inputs = {"raw": folder_fingerprint(settings.raw_dir), "catalogue": catalogue_settings(ctx),
              "engine": ctx.engine}
    kept = ctx.current("build", inputs, "snapshot_version",
                       published_version(store.path(ctx.as_of)))
    if kept:
        return Outcome("skipped", f"snapshot {store.path(ctx.as_of)} is current", kept)
    try:
        if ctx.engine == "spark":
            built, version, _ = build_snapshots_spark(settings, [ctx.as_of])
        else:
            built, version = build_snapshots(settings, [ctx.as_of], tables=ctx.tables)
    except (ContractError, SnapshotError, RuntimeError) as exc:
        raise StepFailed(str(exc)) from exc
    snapshot = built[0]
    return Outcome("done", f"{snapshot.accounts:,} accounts x {snapshot.features} features "
                           f"(catalogue {version}) -> {store.path(ctx.as_of)}",
                   _record(inputs, {"snapshot_version": published_version(store.path(ctx.as_of)),
                                    "catalogue_version": version,
                                    "accounts": snapshot.accounts}))


def catalogue_settings(ctx: RunContext) -> dict:
    """The settings that shape the feature catalogue: changing one makes snapshots stale."""
    s = ctx.settings
    return {"windows_days": list(s.windows_days),
            "event_types": list(s.event_types) if s.event_types else None,
            "max_event_types": s.max_event_types}


# --- score (into the history) -----------------------------------------------------------------
def score(ctx: RunContext) -> Outcome:
    """Every account of the snapshot scored with the current champions, written as the
    history partition of the date (``serving.batch``; one rename publishes it)."""
    from features.store import FeatureStore
    from serving.batch import BatchError, score_duckdb

    settings = ctx.settings
    history = ScoreHistory(history_dir(settings.data_dir))
    inputs = {"snapshot_version": published_version(
                  FeatureStore(settings.features_dir).path(ctx.as_of)),
              "models": champion_versions(settings), "reasons": ctx.reasons,
              "engine": ctx.engine}
    kept = ctx.current("score", inputs, "history_version",
                       published_version(history.path(ctx.as_of)))
    if kept:
        return Outcome("skipped", f"history {history.path(ctx.as_of)} is current "
                                  f"(same snapshot, same models)", kept)
    try:
        if ctx.engine == "spark":
            result = _score_spark(settings, ctx.as_of, str(history.root), ctx.reasons)
        else:
            result = score_duckdb(settings, ctx.as_of, str(history.root), ctx.reasons)
    except BatchError as exc:
        raise StepFailed(str(exc)) from exc
    versions = ", ".join(f"{t} v{v}" for t, v in result.versions.items())
    return Outcome("done", f"{result.accounts:,} accounts with {versions} -> "
                           f"{history.path(ctx.as_of)}",
                   _record(inputs, {"history_version": published_version(
                                        history.path(ctx.as_of)),
                                    "accounts": result.accounts,
                                    "model_versions": result.versions}))


def _score_spark(settings: ServingSettings, as_of: date, out: str, reasons: int):
    from features.spark.session import spark_session
    from serving.batch import BatchError, score_spark

    try:
        spark = spark_session(settings.spark_master, settings.spark_conf)
    except RuntimeError as exc:  # the spark extra is not installed
        raise BatchError(str(exc)) from exc
    return score_spark(spark, settings, as_of, out, reasons)


def champion_versions(settings: ServingSettings) -> dict[str, str]:
    """Task -> the registered version the run would score with (aliases resolved, nothing
    loaded), or the explicit URI of ``model_uris``; a task without a model is left out."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from features.tracking_store import use_store
    from serving.registry import TASKS, TrackingStoreError, check_tracking_store, model_uri

    try:
        check_tracking_store(settings.tracking_uri)
    except TrackingStoreError as exc:
        raise StepFailed(str(exc)) from exc
    use_store(settings.tracking_uri)
    client = mlflow.MlflowClient()
    found = {}
    for task in TASKS:
        uri = model_uri(task, settings.model_uris)
        if not (uri.startswith("models:/") and "@" in uri):
            found[task] = uri
            continue
        name, alias = uri.removeprefix("models:/").split("@", 1)
        try:
            found[task] = str(client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            continue  # no such model: scoring says so if the task is required
    return found


# --- publish ----------------------------------------------------------------------------------
def publish(ctx: RunContext) -> Outcome:
    """Deliver the date's scores (``ctx.deliver``: bulk files, webhooks); skipped when no
    delivery is configured, or when this history partition was delivered already."""
    if ctx.deliver is None:
        return Outcome("skipped", "no delivery configured")
    inputs = {"history_version": _output(ctx, "score", "history_version")}
    kept = ctx.current("publish", inputs)
    if kept:
        return Outcome("skipped", "these scores were delivered already", kept)
    detail = ctx.deliver(ctx)
    return Outcome("done", detail, _record(inputs, {"detail": detail}))


def crm_delivery(settings: ServingSettings) -> Callable[[RunContext], str] | None:
    """The publish step's delivery into the CRM (:mod:`serving.delivery`: the run's bulk files
    and signed webhooks); None when both are switched off. Webhook failures never fail the
    step: they wait in the dead letter for the next run."""
    if not settings.delivery_files and not settings.webhooks:
        return None

    def deliver(ctx: RunContext) -> str:
        from serving.delivery import DeliveryError
        from serving.delivery import publish as deliver_run

        try:
            report = deliver_run(ctx.settings, ScoreHistory(history_dir(ctx.settings.data_dir)),
                                 ctx.as_of)
        except DeliveryError as exc:
            raise StepFailed(f"delivery: {exc}") from exc
        where = f" to {report.folder}" if report.folder else ""
        hooks = (f"; webhooks: {report.delivered}/{report.batches} batches accepted, "
                 f"{report.waiting} waiting in the dead letter" if ctx.settings.webhooks else "")
        return f"{report.changed:,} of {report.accounts:,} accounts changed, files{where}{hooks}"
    return deliver


def _output(ctx: RunContext, step: str, key: str) -> Any:
    record = ctx.records.get(step) or ctx.previous.get(step) or {}
    return record.get("outputs", {}).get(key)


# --- retain -----------------------------------------------------------------------------------
def retain(ctx: RunContext) -> Outcome:
    """Remove history partitions older than ``history_keep_days`` before the newest run."""
    keep = ctx.settings.history_keep_days
    if keep == 0:
        return Outcome("skipped", "history_keep_days = 0: every run is kept")
    history = ScoreHistory(history_dir(ctx.settings.data_dir))
    dates = history.dates()
    if not dates:
        return Outcome("skipped", "no history yet")
    cutoff = dates[-1] - timedelta(days=keep)
    removed = history.prune(cutoff)
    if not removed:
        return Outcome("skipped", f"no run before {cutoff} (history_keep_days = {keep})")
    return Outcome("done", f"removed {len(removed)} run(s) before {cutoff}: "
                           f"{removed[0]} .. {removed[-1]}")


# --- reload -----------------------------------------------------------------------------------
def reload(ctx: RunContext) -> Outcome:
    """Tell a running server (``--reload-url``) to switch to the new snapshot and champions:
    POST /v1/admin/reload with the admin key (setting ``admin_api_key``)."""
    if not ctx.reload_url:
        return Outcome("skipped", "no --reload-url")
    url = reload_endpoint(ctx.reload_url)
    inputs = {"url": url, "snapshot_version": _output(ctx, "build", "snapshot_version"),
              "history_version": _output(ctx, "score", "history_version")}
    kept = ctx.current("reload", inputs)
    if kept:
        return Outcome("skipped", f"{url} reloaded these outputs already", kept)
    key = ctx.settings.admin_api_key
    if key is None:
        raise StepFailed("no admin key: set admin_api_key (PROPENSITY_ADMIN_API_KEY) to an API "
                         "key of scope admin (`propensity keys create <name> --scope admin`)")
    status, body = post_reload(url, key.get_secret_value())
    if status != 200:
        raise StepFailed(f"{url} answered {status}: {_why(body)}")
    versions = ", ".join(f"{t} v{v}" for t, v in (body.get("model_versions") or {}).items())
    return Outcome("done", f"{url}: serving as_of {body.get('as_of')} with {versions}",
                   _record(inputs, {"as_of": body.get("as_of"),
                                    "model_versions": body.get("model_versions")}))


def reload_endpoint(url: str) -> str:
    """The reload URL of a server's base URL (or the endpoint itself)."""
    url = url.rstrip("/")
    return url if url.endswith(RELOAD_PATH) else url + RELOAD_PATH


def post_reload(url: str, key: str, timeout: float = 600) -> tuple[int, Any]:
    """POST to the reload endpoint; (status, JSON body or text). A server that cannot be
    reached is a StepFailed naming the URL."""
    request = urllib.request.Request(url, data=b"", method="POST",
                                     headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return answer.status, _body(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _body(exc.read())
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StepFailed(f"cannot reach {url}: {reason}") from exc


def _why(body: Any) -> str:
    """The reason in an error answer: the reload's ``error``, or the API's detail message."""
    if isinstance(body, dict):
        detail = body.get("detail")
        if body.get("error"):
            return str(body["error"])
        if isinstance(detail, dict) and detail.get("message"):
            return str(detail["message"])
        return json.dumps(body)[:200]
    return str(body)


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")[:200]


# --- monitor and retrain -----------------------------------------------------------------------
def monitor(ctx: RunContext) -> Outcome:
    """Drift and performance of the champions at the run's date (serving.monitoring), saved
    for /v1/monitoring and /metrics, with each task's retraining decision. A book the monitor
    cannot judge yet (no training window, no history) is reported and skipped, not failed."""
    from serving.monitoring.monitor import MonitorError, monitor_and_save

    inputs = {"history_version": _output(ctx, "score", "history_version")}
    kept = ctx.current("monitor", inputs)
    if kept:
        return Outcome("skipped", "these scores were monitored already", kept)
    try:
        result = monitor_and_save(ctx.settings, ctx.as_of)
    except MonitorError as exc:
        return Outcome("skipped", f"not monitored: {exc}")
    triggers = {task: {"retrain": bool(d.get("retrain") or d.get("recalibrate")),
                       "action": action_of(d), "reasons": list(d.get("reasons", []))}
                for task, d in result.get("triggers", {}).items()}
    alerts = sum(1 for r in result.get("drift", []) if r.get("alert"))
    due = [f"{t} ({d['action']})" for t, d in triggers.items() if d["retrain"]]
    detail = (f"{alerts} feature(s) on drift alert; retraining due for "
              f"{', '.join(due) if due else 'no task'}")
    return Outcome("done", detail, _record(inputs, {"triggers": triggers}))


def action_of(trigger: dict) -> str:
    """What a trigger (the monitor's decision, or the monitor step's record of it) asks for:
    ``recalibrate`` when calibration alone has drifted, else ``retrain`` (a record written
    before recalibration existed has no action: it retrained)."""
    if "action" in trigger:
        return trigger["action"]
    return "recalibrate" if trigger.get("recalibrate") and not trigger.get("retrain") \
        else "retrain"


def retrain(ctx: RunContext) -> Outcome:
    """Act on each task whose trigger fired, through the champion/challenger gate: refit only
    the calibrator where calibration alone has drifted (``ctx.recalibrate``), train a
    challenger otherwise (``ctx.retrain``). The reasons go with the MLflow run, and the action
    and reasons into the run's record. The reload step after it then serves a promoted
    version."""
    triggers = _output(ctx, "monitor", "triggers") or {}
    due = {task: d["reasons"] for task, d in triggers.items() if d.get("retrain")}
    if not due:
        return Outcome("skipped", "no trigger fired")
    actions = {task: _action(ctx, triggers[task]) for task in due}
    why = "; ".join(f"{_named(task, actions[task])}: {', '.join(reasons)}"
                    for task, reasons in due.items())
    if ctx.no_retrain or not ctx.settings.retrain_enabled:
        switch = "--no-retrain" if ctx.no_retrain else "retrain_enabled = false"
        return Outcome("skipped", f"retraining is off ({switch}); triggers: {why}")
    if ctx.retrain is None and "retrain" in actions.values():
        return Outcome("skipped", f"no trainer wired into this run; triggers: {why}")
    inputs = {"triggers": due, "actions": actions,
              "history_version": _output(ctx, "score", "history_version")}
    kept = ctx.current("retrain", inputs)
    if kept:
        return Outcome("skipped", "retrained for these triggers already", kept)
    hooks = {"retrain": ctx.retrain, "recalibrate": ctx.recalibrate}
    done: dict[str, list[str]] = {"retrain": [], "recalibrate": []}
    lines, failed = [], []
    for task, reasons in due.items():
        try:
            lines.append(hooks[actions[task]](ctx.settings, task, reasons))
        except Exception as exc:  # noqa: BLE001 - every task is tried; the step then fails
            log.exception("%s of %s failed", actions[task], task)
            failed.append(f"{_named(task, actions[task])}: {exc}")
        else:
            done[actions[task]].append(lines[-1])
    if failed:
        raise StepFailed("retraining failed for " + "; ".join(failed)
                         + (f" (done: {'; '.join(lines)})" if lines else ""))
    return Outcome("done", "; ".join(lines),
                   _record(inputs, {"retrained": done["retrain"],
                                    "recalibrated": done["recalibrate"], "why": due,
                                    "actions": actions}))


def _named(task: str, action: str) -> str:
    return f"{task} (recalibration)" if action == "recalibrate" else task


def _action(ctx: RunContext, trigger: dict) -> str:
    """The trigger's action, a recalibration falling back to a full retrain when no
    recalibration is wired into the run."""
    action = action_of(trigger)
    return "retrain" if action == "recalibrate" and ctx.recalibrate is None else action


STEPS: dict[str, Callable[[RunContext], Outcome]] = {
    "pull": pull, "validate": validate, "build": build, "score": score, "publish": publish,
    "retain": retain, "monitor": monitor, "retrain": retrain, "reload": reload,
}
