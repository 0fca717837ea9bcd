"""The ``propensity`` command: the composition root that mounts each package's commands.

It only wires apps together; heavy imports happen inside command bodies so ``--help`` is fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from features.cli import DataDir, data_app, features_app, kpis_cmd

app = typer.Typer(
    help="propensity: churn and upsell propensity for key-account management.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
app.command("kpis")(kpis_cmd)


@app.command("demo")
def demo(
    accounts: Annotated[int, typer.Option(help="Accounts to generate.", min=1)] = 2_000,
    months: Annotated[int, typer.Option(help="Months of history.", min=4)] = 24,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    data_dir: DataDir = None,
) -> None:
    """The main job end to end on embedded defaults: generate, validate, build the snapshot
    grid, compute KPIs and print a summary."""
    import pandas as pd

    from features import cli as fcli
    from features.generator import default_start

    settings = fcli.load_settings(data_dir)
    start = default_start(months)
    fcli.generate_cmd(accounts=accounts, months=months, seed=seed, start=start.isoformat(),
                      out_dir=None, data_dir=settings.data_dir)
    fcli.validate_cmd(data_dir=settings.data_dir)
    # The grid: every first of month after the first full month, up to the extraction time.
    first = (pd.Timestamp(start) + pd.offsets.MonthBegin(1)).date()
    last = (pd.Timestamp(start) + pd.DateOffset(months=months)).date()
    fcli.build_cmd(as_of=None, start=first.isoformat(), end=last.isoformat(), every="month",
                   data_dir=settings.data_dir)
    fcli.kpis_cmd(by="month,segment", data_dir=settings.data_dir)
