"""The ``propensity`` command: the composition root that mounts each package's commands.

It only wires apps together; heavy imports happen inside command bodies so ``--help`` is fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from features.cli import DataDir, data_app, features_app, kpis_cmd
from serving.batch_cli import score_cmd
from serving.cli import serve_cmd
from serving.keys_cli import keys_app
from training.cli import models_app, train_app

app = typer.Typer(
    help="propensity: churn and upsell propensity for key-account management.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
app.command("kpis")(kpis_cmd)
app.add_typer(train_app, name="train")
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")
app.command("serve")(serve_cmd)
app.command("score")(score_cmd)


@app.command("demo")
def demo(
    accounts: Annotated[int, typer.Option(help="Accounts to generate.", min=1)] = 2_000,
    months: Annotated[int, typer.Option(help="Months of history.", min=4)] = 24,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    data_dir: DataDir = None,
) -> None:
    """The main job end to end on embedded defaults: generate, validate, build the monthly
    snapshot grid, compute KPIs, train and register the churn, upsell and cross-sell models,
    and print a short summary."""
    import pandas as pd

    from features import cli as fcli
    from features.build import month_starts
    from simulator.generator import default_start

    settings = fcli.load_settings(data_dir)
    start = default_start(months)
    fcli.generate_cmd(accounts=accounts, months=months, seed=seed, start=start.isoformat(),
                      out_dir=None, data_dir=settings.data_dir)
    # The grid: every first of month after the first full month, up to the extraction time.
    end = (pd.Timestamp(start) + pd.DateOffset(months=months)).date()
    dates = month_starts((pd.Timestamp(start) + pd.offsets.MonthBegin(1)).date(), end)
    built, version = fcli.build_snapshots(settings, dates)
    rows = [b[1] for b in built]
    fcli.out.print(
        f"[bold]features[/bold]: {len(built)} monthly snapshots {dates[0]} .. {dates[-1]} "
        f"({built[0][2]} features, catalogue {version}), {min(rows):,}-{max(rows):,} accounts "
        f"each, {sum(b[3] for b in built):.1f} s -> {settings.features_dir}"
    )
    frame, path = fcli.compute_and_store_kpis(settings, "month,segment")
    fcli.print_kpis(frame, last_months=3)
    fcli.out.print(f"KPIs for every month: {path}")
    _train_all(settings)


def _train_all(settings) -> None:
    """Train, log and register each task's model; one line per model."""
    from rich.table import Table

    from features import cli as fcli
    from training.cli import quiet_mlflow_logs
    from training.tasks import TASKS
    from training.train import train

    quiet_mlflow_logs()

    table = Table(title="models (test window metrics)")
    for col in ("model", "version", "alias", "ROC AUC", "vs logistic", "vs health score",
                "ECE", "lift@10%"):
        table.add_column(col, justify="right")
    for task in TASKS:
        with fcli.console.status(f"training {task}") as status:
            r = train(task, settings, progress=lambda m, t=task: status.update(f"{t}: {m}"))
        table.add_row(
            r.registered_model, str(r.version), r.alias, f"{r.metrics['roc_auc']:.3f}",
            f"{r.metrics['roc_auc'] - r.baselines['logistic']['roc_auc']:+.3f}",
            f"{r.metrics['roc_auc'] - r.baselines['health_score']['roc_auc']:+.3f}",
            f"{r.metrics['ece']:.3f}", f"{r.metrics['lift_at_10']:.2f}",
        )
    fcli.out.print(table)
    fcli.out.print(f"MLflow store: {settings.mlflow_dir} (make mlflow-ui to browse)")
    fcli.out.print("Serve them: `propensity keys create me --scope read`, then "
                   "`propensity serve` (page on http://127.0.0.1:8000, API docs on /docs)")
