"""Commands of the training layer: ``propensity train ...`` and ``propensity models ...``."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table as RichTable

from features.cli_options import DataDir, console, contract_failure, fail, out, settings_of

if TYPE_CHECKING:  # pydantic-settings costs ~0.5 s to import: not for `--help`
    from training.settings import TrainingSettings

train_app = typer.Typer(
    help="Train churn, upsell and cross-sell models (tracked in MLflow). Labels look ahead "
    "the horizon: 90 days by default; set it with --horizon-days on each command, or "
    "horizon_days in propensity.toml / PROPENSITY_HORIZON_DAYS.",
    no_args_is_help=True)
models_app = typer.Typer(help="Registered models: list them, promote a version.",
                         no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object (automation).")]
HorizonDays = Annotated[int | None, typer.Option(
    "--horizon-days", min=1,
    help="Label horizon in days: what happens within it counts (default: the horizon_days "
    "setting, 90).")]


def task_settings(data_dir: Path | None, horizon_days: int | None):
    """Settings of a training command, with its --horizon-days on top."""
    settings = load_settings(data_dir)
    if horizon_days is not None:
        settings = settings.model_copy(update={"horizon_days": horizon_days})
    return settings
SHOWN = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_at_10", "recall_at_10",
         "value_capture_at_10")


def load_settings(data_dir: Path | None = None) -> TrainingSettings:
    """Training's settings from env / TOML, with the command line's --data-dir on top."""
    from training.settings import TrainingSettings

    return settings_of(TrainingSettings, data_dir)


@contextmanager
def failing_cleanly(settings):
    """A training error or a raw-data contract error is one line and exit 1 (the raw-data one
    naming the file, table and column), never a traceback."""
    from features.sources import ContractError
    from training.train import TrainingError

    try:
        yield
    except TrainingError as exc:
        fail(str(exc))
    except ContractError as exc:
        fail(contract_failure(settings.raw_dir, exc))


def reference_for(ctx: typer.Context, settings):
    """The reference-probability provider the composition root put on the context, for these
    settings (None: training reports no reference)."""
    factory = ctx.obj.get("reference") if isinstance(ctx.obj, dict) else None
    return factory(settings) if factory else None


def _run(ctx: typer.Context, task: str, data_dir: Path | None, as_json: bool,
         horizon_days: int | None = None, **kwargs) -> None:
    from training.train import summary_json, train

    settings = task_settings(data_dir, horizon_days)
    kwargs["reference"] = reference_for(ctx, settings)
    quiet_mlflow_logs()
    with failing_cleanly(settings):
        if as_json:
            result = train(task, settings, **kwargs)
        else:
            with steps(f"training {task}", TRAIN_STEPS) as advance:
                result = train(task, settings, progress=advance, **kwargs)
    if as_json:
        typer.echo(summary_json(result))
        return
    _print_result(result)


TRAIN_STEPS = 7  # load, dataset, fit, calibrate, baselines, intervals, log + register


def quiet_mlflow_logs() -> None:
    """Keep MLflow's routine INFO lines and environment warnings out of the command's output."""
    import logging

    import mlflow  # noqa: F401 - MLflow sets its loggers' levels when imported; override after

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)


@contextmanager
def steps(title: str, total: int):
    """A Rich progress bar advanced once per step message; yields the callback."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total}"), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(title, total=total)
        first = True

        def advance(message: str) -> None:
            nonlocal first
            if not first:
                bar.advance(task)
            first = False
            bar.update(task, description=f"{title}: {message}")

        yield advance
        bar.update(task, completed=total)


@train_app.command("backtest")
def train_backtest(
    ctx: typer.Context,
    task: Annotated[str, typer.Argument(help="churn, upsell or cross-sell.")],
    cutoffs: Annotated[int, typer.Option(help="Number of successive cut-offs.", min=1)] = 3,
    horizon_days: HorizonDays = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Does the model beat its baselines on your data? Refit at N expanding-window cut-offs
    (each trained on more dates than the one before, tested on the next date at least the
    horizon later), pool the out-of-time predictions of all cut-offs and report each
    candidate's pooled ROC AUC, PR AUC, lift and revenue capture with 95 % intervals
    (bootstrap over accounts), the paired difference model - better baseline and a verdict,
    plus one row per cut-off. Registers nothing."""
    from training.tasks import TASKS
    from training.train import backtest

    if task not in TASKS:
        fail(f"unknown task {task!r}; choose from {', '.join(TASKS)}", 2)
    settings = task_settings(data_dir, horizon_days)
    with failing_cleanly(settings), steps(f"backtest {task}", cutoffs * 4) as advance:
        report = backtest(task, settings, cutoffs, progress=advance,
                          reference=reference_for(ctx, settings))
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    rows = report["cutoffs"]
    candidates = list(report["pooled"]["metrics"])
    table = RichTable(title=f"{task}: rolling backtest, ROC AUC per cut-off")
    for col in ("test date", "trained to", "rows", "positives", *candidates, "model ECE"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["test"], r["train_to"], f"{r['rows_test']:,}", f"{r['positives']:,}",
                      *[_fmt((r.get(c) or {}).get("roc_auc")) for c in candidates],
                      _fmt(r["model"]["ece"]))
    out.print(table)
    pooled = report["pooled"]
    _print_intervals(f"pooled over {len(rows)} cut-offs: {pooled['rows']:,} rows, "
                     f"{pooled['accounts']:,} accounts, {pooled['positives']:,} positives",
                     pooled["metrics"], {"metrics": pooled["intervals"],
                                         "differences": pooled["differences"],
                                         "method": pooled["method"]})
    out.print(f"verdict: {report['verdict']}")


INTERVAL_SHOWN = ("roc_auc", "pr_auc", "lift_at_10", "value_capture_at_10")


def _print_intervals(title: str, points: dict, intervals: dict | None) -> None:
    """A table of candidates x metrics, each ``value [lo, hi]``, and the paired differences
    model - each other candidate."""
    table = RichTable(title=title)
    table.add_column("candidate")
    shown = [m for m in INTERVAL_SHOWN if any(m in metrics for metrics in points.values())]
    for metric in shown:
        table.add_column(metric, justify="right")
    cells = (intervals or {}).get("metrics", {})
    for cand in points:
        table.add_row(cand, *[_with_interval(points[cand].get(m), cells.get(cand, {}).get(m))
                              for m in shown])
    out.print(table)
    for pair, diff in (intervals or {}).get("differences", {}).items():
        parts = [f"{m} {_signed(d)}" for m, d in diff.items() if m in shown]
        out.print(f"paired {pair}: " + "; ".join(parts), highlight=False)
    if intervals:
        out.print(f"intervals: {intervals['method']}", highlight=False)


def _with_interval(value, interval: dict | None) -> str:
    if value is None:
        return "-"
    if not interval or interval.get("lo") is None or interval["lo"] != interval["lo"]:
        return f"{value:.4f}"
    return f"{value:.4f} [{interval['lo']:.3f}, {interval['hi']:.3f}]"


def _signed(d: dict) -> str:
    return f"{d['value']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}]"


def _print_result(result) -> None:
    table = RichTable(title=f"{result.registered_model} v{result.version} -> {result.alias} "
                            f"(test {result.window['test']})")
    table.add_column("metric")
    columns = {"model": result.metrics, **result.baselines}
    if result.oracle:
        columns["oracle"] = result.oracle
    for col in columns:
        table.add_column(col, justify="right")
    for metric in SHOWN:
        if metric in result.metrics:
            table.add_row(metric, *[_fmt(columns[c].get(metric)) for c in columns])
    out.print(table)
    if result.selection:
        out.print(selection_table(result.selection))
    if result.intervals:
        _print_intervals("95 % intervals (bootstrap over accounts)", columns, result.intervals)
    else:
        beat = {b: result.metrics["roc_auc"] - m["roc_auc"] for b, m in result.baselines.items()}
        out.print("ROC AUC over baselines: " + ", ".join(f"{b} {d:+.4f}" for b, d in beat.items()))
    if "customer_score" in result.baselines:
        coverage = result.baselines["customer_score"].get("coverage", float("nan"))
        out.print(f"customer_score: your own health score (health_scores), mapped to a "
                  f"probability on the training dates; {coverage:.0%} of the test rows had one "
                  "(the others get the unscored rate)")
    if result.oracle:
        gap = result.oracle["roc_auc"] - result.metrics["roc_auc"]
        out.print(f"gap to the oracle (generator's true probabilities): {gap:+.4f} AUC")
    cal = result.calibration
    before = result.metrics.get("ece_before_calibration", float("nan"))
    out.print(f"calibration: {cal.get('method')}; ECE {before:.4f} -> "
              f"{result.metrics['ece']:.4f} on the test window")
    if result.dropped_features:
        out.print(f"left out {len(result.dropped_features)} feature(s) constant or all-null in "
                  f"the training window: {', '.join(result.dropped_features)}", highlight=False)
    out.print(f"promotion: {result.reason}")
    out.print(f"run {result.run_id}", highlight=False)  # own line: a wrapped id is no id


def selection_table(selection: dict) -> RichTable:
    """Candidates by out-of-fold log loss (the choice's score), AUC, per-fold log loss."""
    folds = selection["folds"]
    table = RichTable(title=f"model choice: {len(folds)}-fold expanding-window CV, out-of-fold "
                            "log loss; the simplest within 1 s.e. of the best wins")
    for col in ("candidate", "log loss", "vs best", "1 s.e.", "ROC AUC", "log loss per fold"):
        table.add_column(col, justify="left" if col == "candidate" else "right")
    for name, c in selection["candidates"].items():
        detail = (f"C={selection['logistic_c']:g}" if name == "logistic" else
                  f"{selection['rounds']['final']} trees" if name == "lightgbm" else
                  f"tree weight {c['tree_weight']:g}")
        mark = " (chosen)" if name == selection["chosen"] else ""
        table.add_row(f"{name} ({detail}){mark}", _fmt(c["log_loss"]),
                      f"{c['difference_to_best']:+.4f}", _fmt(c["standard_error"]),
                      _fmt(c["roc_auc"]), " ".join(_fmt(v) for v in c["folds"]["log_loss"]))
    return table


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


@train_app.command("churn")
def train_churn(
    ctx: typer.Context,
    renewal_only: Annotated[bool, typer.Option(help="Label only accounts due to renew.")] = False,
    horizon_days: HorizonDays = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Churn within the horizon: ARR > 0 at as_of and 0 at as_of + horizon."""
    _run(ctx, "churn", data_dir, as_json, horizon_days, renewal_only=renewal_only)


@train_app.command("upsell")
def train_upsell(ctx: typer.Context, horizon_days: HorizonDays = None, data_dir: DataDir = None,
                 as_json: JsonFlag = False) -> None:
    """Upsell: ARR grows by the configured share, or a new product starts, within the horizon."""
    _run(ctx, "upsell", data_dir, as_json, horizon_days)


@train_app.command("cross-sell")
def train_cross_sell(
    ctx: typer.Context,
    product: Annotated[str | None, typer.Option(help="One product; default: next best "
                                                      "product over all products.")] = None,
    horizon_days: HorizonDays = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Cross-sell: adopts a product it did not hold, within the horizon."""
    _run(ctx, "cross-sell", data_dir, as_json, horizon_days, product=product)


@train_app.command("recalibrate")
def train_recalibrate(
    task: Annotated[str, typer.Argument(help="churn, upsell or cross-sell.")],
    reason: Annotated[str | None, typer.Option(
        help="Why, recorded on the MLflow run (default: by hand).")] = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Refit only the champion's calibrator on the newest matured labels (its trees kept byte
    for byte) and register it as a new version through the champion/challenger gate: promoted
    when the paired ROC AUC is not worse beyond the margin and ECE and log loss both improve
    on the newest matured date. For when only calibration has drifted; seconds, not a
    retrain. Exits non-zero, registering nothing, when no labels have matured since the
    model's training."""
    from training.recalibrate import recalibrate, summary_json
    from training.tasks import TASKS

    if task not in TASKS:
        fail(f"unknown task {task!r}; choose from {', '.join(TASKS)}", 2)
    settings = load_settings(data_dir)
    quiet_mlflow_logs()
    reasons = [reason] if reason else []
    with failing_cleanly(settings):
        if as_json:
            result = recalibrate(task, settings, reasons=reasons)
        else:
            with console.status(f"recalibrating {task}") as status:
                result = recalibrate(task, settings, reasons=reasons,
                                     progress=lambda m: status.update(f"{task}: {m}"))
    if as_json:
        typer.echo(summary_json(result))
        return
    title = (f"{result.registered_model}: v{result.source_version} recalibrated -> "
             + (f"identical to v{result.version}" if result.reused
                else f"v{result.version} {result.alias}"))
    table = RichTable(title=f"{title} (test {', '.join(result.test_dates)}, "
                            f"{result.rows['test']:,} rows, {result.positives['test']} positive)")
    for col in ("metric", f"v{result.source_version} (before)", "recalibrated"):
        table.add_column(col, justify="right")
    for metric in ("roc_auc", "log_loss", "brier", "ece"):
        table.add_row(metric, _fmt(result.before.get(metric)), _fmt(result.after.get(metric)))
    out.print(table)
    out.print(f"calibrator: {result.calibration['method']} fitted on "
              f"{', '.join(result.calibration_dates)} ({result.rows['calibration']:,} rows, "
              f"{result.positives['calibration']} positive); paired ROC AUC difference "
              f"{_signed(result.versus_source)}", highlight=False)
    out.print(f"promotion: {result.reason}")
    out.print(f"{result.seconds:.1f} s; run {result.run_id}", highlight=False)


@train_app.command("tabular")
def train_tabular(
    table: Annotated[Path, typer.Option(help="A prepared per-account table (CSV or Parquet).")],
    label: Annotated[str, typer.Option(help="The 0/1 or yes/no column to predict.")],
    id_col: Annotated[str | None, typer.Option("--id", help="Identifier column.")] = None,
    time_col: Annotated[str | None, typer.Option("--time", help="Time column: evaluate on the "
                                                  "latest 30 % instead of 5-fold CV.")] = None,
    name: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Train on your own table: types inferred, LightGBM vs logistic vs blend by CV, calibrated."""
    from training.tabular.tracking import train_table
    from training.train import TrainingError

    settings = load_settings(data_dir)
    quiet_mlflow_logs()
    try:
        with console.status(f"training on {table.name}") as status:
            summary = train_table(table, label, settings, id_col=id_col, time_col=time_col,
                                  name=name, progress=lambda m: status.update(m))
    except TrainingError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    kinds = RichTable(title=f"{table.name}: inferred columns")
    for col in ("column", "kind", "detail"):
        kinds.add_column(col)
    for c in summary["columns"]:
        kinds.add_row(c["name"], c["kind"], c["detail"])
    out.print(kinds)
    scores = RichTable(title=f"{summary['evaluation']} (mean ± std)")
    scores.add_column("candidate")
    for metric in ("roc_auc", "pr_auc", "brier", "ece", "lift_at_10"):
        scores.add_column(metric, justify="right")
    for cand, m in summary["candidates"].items():
        mark = " (chosen)" if cand == summary["chosen"] else ""
        scores.add_row(cand + mark, *[_pm(m.get(k)) for k in
                                       ("roc_auc", "pr_auc", "brier", "ece", "lift_at_10")])
    scores.add_row("chosen, calibrated", *[_pm(summary["calibrated_metrics"].get(k)) for k in
                                           ("roc_auc", "pr_auc", "brier", "ece", "lift_at_10")])
    out.print(scores)
    if "intervals" in summary:
        spread = summary["intervals"]
        points = {cand: {m: iv["value"] for m, iv in ms.items()}
                  for cand, ms in spread["metrics"].items()}
        _print_intervals("pooled out-of-fold, 95 % intervals", points, spread)
        out.print(f"versus the baseline: {summary['versus_baseline']['verdict']}",
                  highlight=False)
    out.print(f"{summary['registered_model']} v{summary['version']} -> {summary['alias']} "
              f"({summary['reason']}); run {summary['run_id']}")


def _pm(m: dict | None) -> str:
    if not m or m.get("mean") is None:
        return "-"
    std = m.get("std")
    return f"{m['mean']:.4f}" + (f" ± {std:.4f}" if std is not None else "")


@models_app.command("list")
def models_list(data_dir: DataDir = None, as_json: JsonFlag = False) -> None:
    """Registered versions, their aliases and test metrics."""
    from training.registry_listing import local_store_file, read_versions
    from training.tasks import TASKS, registered_name
    from training.tracking import configure, list_versions

    settings = load_settings(data_dir)
    names = [registered_name(t) for t in TASKS]
    db = local_store_file(settings.tracking_uri)  # the embedded store: read without MLflow
    rows = read_versions(db, names) if db else None
    if rows is None:
        configure(settings.tracking_uri, settings.mlflow_dir)
        rows = list_versions(names)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = RichTable(title="registered models")
    for col in ("name", "version", "aliases", "roc_auc", "ece", "run_id"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], str(r["version"]), ", ".join(r["aliases"]),
                      _fmt(r["roc_auc"]), _fmt(r["ece"]), r["run_id"] or "")
    out.print(table)


@models_app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="Registered model, e.g. propensity-churn.")],
    version: Annotated[int, typer.Argument(help="Version to make champion.")],
    data_dir: DataDir = None,
) -> None:
    """Make VERSION the champion (the previous champion becomes challenger)."""
    from mlflow.exceptions import MlflowException

    from features import audit
    from training.tracking import configure, promote

    settings = load_settings(data_dir)
    configure(settings.tracking_uri, settings.mlflow_dir)
    try:
        promote(name, version)
    except MlflowException as exc:
        error = f"{name} v{version}: {exc.message}"
        audit.record(settings.audit_path, "model_promote", False, key_name=None,
                     actor=audit.cli_actor(), detail=error)
        fail(error)
    audit.record(settings.audit_path, "model_promote", True, key_name=None,
                 actor=audit.cli_actor(), detail=f"{name} v{version} is champion")
    out.print(f"{name} v{version} is now champion")
