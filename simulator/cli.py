"""``propensity data generate``: write a simulated book of accounts into a data directory.

Mounted under ``propensity data`` by the composition root (propensity_cli.py), beside the
features package's ``validate`` and ``describe``: features itself never imports the simulator.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from features.cli_options import DataDir, console, date_option, fail, load_settings, out


def generate_cmd(
    accounts: Annotated[int, typer.Option(help="Number of accounts.", min=1)] = 2_000,
    months: Annotated[int, typer.Option(help="Months of history.", min=1)] = 24,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: settings.seed).")] = None,
    start: Annotated[date | None, date_option(
        "--start", help="First day (default: M months ago).")] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Default: <data-dir>/raw (the true probabilities go to "
                     "the sibling folder truth/)."),
    ] = None,
    usage_activity: Annotated[float, typer.Option(
        help="Denser usage: multiplies each user's daily chance of activity (at most 1). "
        "Other tables stay those of the default book.", min=0.001)] = 1.0,
    usage_sessions: Annotated[float, typer.Option(
        help="Denser usage: mean sessions of an active user-day, each a row per event type "
        "used (about that many times the rows). --usage-activity 16 --usage-sessions 1.8 "
        "gives ~15 rows per account-day, a real book of daily usage.", min=1.0)] = 1.0,
    data_dir: DataDir = None,
) -> None:
    """Generate a realistic B2B SaaS book of accounts (the embedded default data)."""
    from simulator.generator import default_start, generate
    from simulator.signals import UsageDensity
    from simulator.truth import TRUTH_DIR, truth_dir

    settings = load_settings(data_dir)
    first = start or default_start(months)
    if first.day != 1:
        fail(f"--start {first}: the simulated window starts on the first day of a month", 2)
    target = out_dir or settings.raw_dir
    truth = truth_dir(settings.data_dir) if out_dir is None else target.parent / TRUTH_DIR
    began = time.perf_counter()
    with console.status(f"generating {accounts:,} accounts x {months} months"):
        summary = generate(accounts, months, seed if seed is not None else settings.seed, first,
                           target, truth, UsageDensity(usage_activity, usage_sessions))
    table = RichTable(title=f"generated in {time.perf_counter() - began:.1f} s -> {target}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in summary.get("rows", {}).items():
        table.add_row(name, f"{rows:,}")
    out.print(table)
