"""The ``propensity`` command: the composition root that mounts each package's commands.

It only wires apps together, and the synthetic world in: ``data generate`` and the demo come
from ``simulator``, and training gets the simulator's oracle as its reference-probability
provider (it reads the data directory's ``truth/`` folder, which only generated data has).
Heavy imports happen inside command bodies so ``--help`` is fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from features.cli import data_app, features_app, kpis_cmd
from features.cli_options import DataDir
from features.pull_cli import pull_cmd
from serving.batch_cli import score_cmd
from serving.cli import mcp_cmd, serve_cmd
from serving.daily.cli import run_cmd
from serving.keys_cli import keys_app
from serving.monitor_cli import monitor_cmd
from simulator.cli import generate_cmd
from training.cli import models_app, train_app

if TYPE_CHECKING:  # pydantic-settings costs ~0.5 s to import: not for `--help`
    from training.settings import TrainingSettings

app = typer.Typer(
    help="propensity: churn and upsell propensity for key-account management.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app.command("generate")(generate_cmd)
data_app.command("pull")(pull_cmd)
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
app.command("kpis")(kpis_cmd)
app.add_typer(train_app, name="train")
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")
app.command("serve")(serve_cmd)
app.command("mcp")(mcp_cmd)
app.command("score")(score_cmd)
app.command("run")(run_cmd)
app.command("monitor")(monitor_cmd)


def simulator_reference(settings):
    """The oracle of the data directory's truth folder (reports None where there is none)."""
    from simulator.oracle import OracleReference
    from simulator.truth import truth_dir

    return OracleReference(truth_dir(settings.data_dir))


def retrain_task(settings, task: str, reasons: list[str]) -> str:
    """A daily run's retraining: a challenger of ``task`` trained on the newest labelled
    snapshots and passed through the champion/challenger gate, the trigger's reasons tagged on
    its MLflow run (serving runs the job but may not import training)."""
    from features.cli_options import settings_of
    from training.settings import TrainingSettings
    from training.train import train

    training = settings_of(TrainingSettings, settings.data_dir)
    result = train(task, training, reference=simulator_reference(training),
                   tags={"retrain_reason": "; ".join(reasons)[:5000]})
    return f"{task}: v{result.version} -> {result.alias} ({result.reason})"


def recalibrate_task(settings, task: str, reasons: list[str]) -> str:
    """A daily run's recalibration, when only calibration has drifted: the champion's
    calibrator of ``task`` refitted on the newest matured labels, registered as a new version
    with the same trees and passed through the champion/challenger gate, the trigger's reasons
    tagged on its MLflow run."""
    from features.cli_options import settings_of
    from training.recalibrate import recalibrate
    from training.settings import TrainingSettings

    training = settings_of(TrainingSettings, settings.data_dir)
    return recalibrate(task, training, reasons=reasons).line()


@app.callback()
def wire(ctx: typer.Context) -> None:
    """Hand the commands what the composition root provides: training's reference, and the
    daily run's retraining and recalibration."""
    ctx.obj = {"reference": simulator_reference, "retrain": retrain_task,
               "recalibrate": recalibrate_task}


@app.command("demo")
def demo(
    accounts: Annotated[int, typer.Option(help="Accounts to generate.", min=1)] = 2_000,
    months: Annotated[int, typer.Option(help="Months of history.", min=4)] = 24,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    data_dir: DataDir = None,
) -> None:
    """The main job end to end on embedded defaults: generate, validate, build the monthly
    snapshot grid, compute KPIs, train and register the churn, upsell and cross-sell models,
    print a short summary, then two daily runs a week apart (the newest snapshot date and 7
    days before) into the score history."""
    import pandas as pd

    from features.build import month_starts
    from features.cli import build_with_progress, print_kpis
    from features.cli_options import out, settings_of
    from features.pipeline import compute_and_store_kpis
    from simulator.generator import default_start
    from training.settings import TrainingSettings

    settings = settings_of(TrainingSettings, data_dir)  # the base's settings and training's
    start = default_start(months)
    generate_cmd(accounts=accounts, months=months, seed=seed, start=start, out_dir=None,
                 data_dir=settings.data_dir)
    # The grid: every first of month after the first full month, up to the extraction time.
    end = (pd.Timestamp(start) + pd.DateOffset(months=months)).date()
    dates = month_starts((pd.Timestamp(start) + pd.offsets.MonthBegin(1)).date(), end)
    built, version, _ = build_with_progress(settings, dates)
    rows = [b.accounts for b in built]
    out.print(
        f"[bold]features[/bold]: {len(built)} monthly snapshots {dates[0]} .. {dates[-1]} "
        f"({built[0].features} features, catalogue {version}), {min(rows):,}-{max(rows):,} "
        f"accounts each, {sum(b.seconds for b in built):.1f} s -> {settings.features_dir}"
    )
    frame, path = compute_and_store_kpis(settings, ["month", "segment"])
    print_kpis(frame, last_months=3)
    out.print(f"KPIs for every month: {path}")
    _train_all(settings)
    _two_daily_runs(settings.data_dir, dates[-1])
    out.print("Serve them: `propensity keys create me --scope read`, then "
              "`propensity serve` (page on http://127.0.0.1:8000, API docs on /docs)")


def _two_daily_runs(data_dir, newest) -> None:
    """The daily job at the newest snapshot date and a week before it, so the score history
    (and what changed between the two) has something to show."""
    from datetime import timedelta

    from features.cli_options import out, settings_of
    from serving.daily.cli import RichReporter
    from serving.daily.run import run_daily
    from serving.daily.steps import RunContext, crm_delivery
    from serving.settings import ServingSettings

    settings = settings_of(ServingSettings, data_dir)
    for day in (newest - timedelta(days=7), newest):
        with RichReporter(day) as reporter:
            run_daily(RunContext(settings, day, deliver=crm_delivery(settings)), reporter)
        reporter.summary()
    out.print(f"score history: {settings.data_dir / 'history'} (runs of "
              f"{newest - timedelta(days=7)} and {newest}; `propensity run` adds a day)")


def _train_all(settings: TrainingSettings) -> None:
    """Train, log and register each task's model; one line per model."""
    from rich.table import Table

    from features.cli_options import console, out
    from training.cli import quiet_mlflow_logs
    from training.tasks import TASKS
    from training.train import train

    quiet_mlflow_logs()

    table = Table(title="models (test window metrics)")
    for col in ("model", "version", "alias", "ROC AUC", "vs logistic", "vs health score",
                "vs customer score", "ECE", "lift@10%"):
        table.add_column(col, justify="right")
    reference = simulator_reference(settings)
    for task in TASKS:
        with console.status(f"training {task}") as status:
            r = train(task, settings, reference=reference,
                      progress=lambda m, t=task: status.update(f"{t}: {m}"))
        table.add_row(
            r.registered_model, str(r.version), r.alias, f"{r.metrics['roc_auc']:.3f}",
            f"{r.metrics['roc_auc'] - r.baselines['logistic']['roc_auc']:+.3f}",
            f"{r.metrics['roc_auc'] - r.baselines['health_score']['roc_auc']:+.3f}",
            f"{r.metrics['roc_auc'] - r.baselines['customer_score']['roc_auc']:+.3f}"
            if "customer_score" in r.baselines else "-",
            f"{r.metrics['ece']:.3f}", f"{r.metrics['lift_at_10']:.2f}",
        )
    out.print(table)
    out.print(f"MLflow store: {settings.mlflow_dir} (make mlflow-ui to browse)")
