"""Commands of the features layer: raw data (validate, describe), snapshots, KPIs.

They parse arguments, call ``features.pipeline`` and print; the work is in the pipeline.
"""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table as RichTable

from features.cli_options import (
    DataDir,
    console,
    contract_failure,
    date_option,
    fail,
    load_settings,
    out,
)

if TYPE_CHECKING:  # pydantic-settings costs ~0.5 s to import: not for `--help`
    from features.settings import Settings

data_app = typer.Typer(help="Raw CRM data: generate, validate, describe the contract.",
                       no_args_is_help=True)
features_app = typer.Typer(help="Point-in-time feature snapshots (the offline feature store).",
                           no_args_is_help=True)


@data_app.command("validate")
def validate_cmd(data_dir: DataDir = None) -> None:
    """Check the raw tables against the contract; exit non-zero naming every broken rule.

    Warnings (unusual but usable data: an absent optional table, null owners) are printed and
    the exit code stays 0."""
    from features.pipeline import open_validated, table_rows
    from features.sources import ContractError

    settings = load_settings(data_dir)
    try:
        tables = open_validated(settings)
    except ContractError as exc:
        fail_contract(settings, exc)
    table = RichTable(title=f"{settings.raw_dir}: valid")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in table_rows(tables).items():
        table.add_row(name, "absent (optional)" if rows is None else f"{rows:,}")
    out.print(table)
    print_warnings(tables.warnings)


def print_warnings(warnings: tuple[str, ...] | list[str]) -> None:
    """One ``warning:`` line per unusual-but-valid finding of validation, on stderr."""
    for line in warnings:
        console.print(f"[yellow]warning:[/yellow] {line}", highlight=False, soft_wrap=True)


@data_app.command("profile")
def profile_cmd(
    as_of: Annotated[date | None, date_option(
        "--as-of", help="Snapshot date (default: the extraction date of the export).")] = None,
    data_dir: DataDir = None,
) -> None:
    """What the features would hold: per family and feature, the share of null values and of
    the most common value, the source table it needs and whether the export has it."""
    from features.build import SnapshotError, build_features, feature_groups
    from features.event_types import chosen_spec
    from features.pipeline import open_validated
    from features.sources import ContractError

    settings = load_settings(data_dir)
    try:
        tables = open_validated(settings)
        print_warnings(tables.warnings)
        day = as_of or (tables.extracted_at.date() if tables.extracted_at else None)
        if day is None:
            fail("the export has no extraction time (_manifest.json): give --as-of DATE", 2)
        spec = chosen_spec(settings, lambda query: tables.con.execute(query).fetchall())
        snapshot = build_features(tables, day, spec)
    except ContractError as exc:
        fail_contract(settings, exc)
    except SnapshotError as exc:
        fail(str(exc))
    print_profile(snapshot, feature_groups(spec), tables.present, day)


def print_profile(snapshot, groups, present: frozenset[str], as_of: date) -> None:
    """The profile table of a snapshot, and its one-line summary."""
    from features.profile import profile_snapshot, summary

    profiles = profile_snapshot(snapshot, groups, present)
    table = RichTable(title=f"feature profile as_of={as_of} ({len(snapshot):,} accounts)",
                      box=box.SIMPLE_HEAD)
    for col, justify in (("family", "left"), ("feature", "left"), ("source", "left"),
                         ("present", "left"), ("null", "right"), ("most common", "right"),
                         ("", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for p in profiles:
        table.add_row(p.family, p.feature, p.source, "yes" if p.source_present else "no",
                      f"{p.null_share:.0%}", f"{p.top_share:.0%}", p.status)
    out.print(table)
    out.print(summary(profiles, present), highlight=False)


@data_app.command("describe")
def describe_data_cmd() -> None:
    """Print the raw data contract as Markdown (docs/data-contract.md is this output)."""
    from features.contract_docs import render_contract_markdown

    typer.echo(render_contract_markdown(), nl=False)


def fail_contract(settings: Settings, exc, source: str | None = None):
    """Exit naming every broken rule of the raw data."""
    fail(contract_failure(source or settings.raw_dir, exc))


def _grid_dates(as_of: date | None, start: date | None, end: date | None,
                every: str, week_start: str = "mon") -> list[date]:
    from features.grid import grid_dates

    if as_of and (start or end):
        fail("give either --as-of or --from/--to, not both", 2)
    if as_of:
        return [as_of]
    if not (start and end):
        fail("give --as-of DATE, or --from DATE --to DATE", 2)
    try:
        dates = grid_dates(start, end, every, week_start)
    except ValueError as exc:
        fail(str(exc), 2)
    if not dates:
        fail(f"no --every {every} date between {start} and {end}", 2)
    return dates


@features_app.command("build")
def build_cmd(
    as_of: Annotated[date | None, date_option("--as-of", help="One snapshot date.")] = None,
    start: Annotated[date | None, date_option("--from", help="Grid start.")] = None,
    end: Annotated[date | None, date_option("--to", help="Grid end (inclusive).")] = None,
    every: Annotated[str, typer.Option(help="Grid step: day, week, month (the 1st) or "
                                       "'N days' from --from.")] = "month",
    week_start: Annotated[str, typer.Option(
        help="Weekday of a weekly grid's dates: mon, tue, ... sun.")] = "mon",
    engine: Annotated[str, typer.Option(
        help="duckdb (embedded) or spark (settings.spark_master; needs the spark extra).")
    ] = "duckdb",
    raw: Annotated[str | None, typer.Option(
        "--raw", help="Spark only: folder (any Hadoop URI) of the raw Parquet tables.")] = None,
    out_uri: Annotated[str | None, typer.Option(
        "--out", help="Spark only: snapshot root (any Hadoop URI).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Build point-in-time feature snapshots into <data-dir>/features/as_of=YYYY-MM-DD/."""
    settings = load_settings(data_dir)
    dates = _grid_dates(as_of, start, end, every, week_start)
    target = settings.features_dir
    if engine == "spark":
        built, version, target = build_on_spark(settings, dates, raw, out_uri)
    elif engine != "duckdb":
        fail(f"--engine {engine!r}: choose duckdb or spark", 2)
    elif raw or out_uri:
        fail("--raw and --out go with --engine spark (DuckDB reads <data-dir>/raw)", 2)
    else:
        built, version, present = build_with_progress(settings, dates)
    summary = RichTable(title=f"feature snapshots -> {target} (catalogue {version})")
    for col in ("as_of", "accounts", "features", "seconds"):
        summary.add_column(col, justify="right")
    for snapshot in built:
        summary.add_row(str(snapshot.as_of), f"{snapshot.accounts:,}", str(snapshot.features),
                        f"{snapshot.seconds:.2f}")
    out.print(summary)
    if engine == "duckdb" and built:
        _profile_stored(settings, built[-1].as_of, present)


def _profile_stored(settings: Settings, as_of: date, present: frozenset[str]) -> None:
    """The profile of the last snapshot a build stored."""
    from features.build import feature_groups
    from features.event_types import stored_spec
    from features.store import FeatureStore

    store = FeatureStore(settings.features_dir)
    groups = feature_groups(stored_spec(settings, store, as_of))
    print_profile(store.read(as_of), groups, present, as_of)


def build_with_progress(settings: Settings, dates: list[date]):
    """``pipeline.build_snapshots`` under a progress bar; bad input exits naming the problem."""
    from rich.progress import Progress

    from features.build import SnapshotError
    from features.pipeline import build_snapshots, open_validated
    from features.sources import ContractError

    try:
        tables = open_validated(settings)  # before the bar: errors print alone, not under it
        print_warnings(tables.warnings)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("building snapshots", total=len(dates))
            built, version = build_snapshots(settings, dates, lambda _: progress.advance(task),
                                             tables)
        return built, version, tables.present
    except ContractError as exc:
        fail_contract(settings, exc)
    except SnapshotError as exc:
        fail(str(exc))


def build_on_spark(settings: Settings, dates: list[date], raw: str | None, out_uri: str | None):
    """``pipeline.build_snapshots_spark``, bad input reported as for DuckDB."""
    from features.build import SnapshotError
    from features.pipeline import build_snapshots_spark
    from features.sources import ContractError

    status = f"building {len(dates)} snapshot(s) on Spark ({settings.spark_master})"
    try:
        with console.status(status):
            return build_snapshots_spark(settings, dates, raw, out_uri)
    except RuntimeError as exc:
        fail(str(exc))
    except ContractError as exc:
        fail([f"{raw or settings.raw_dir}: {len(exc.problems)} problem(s)", *exc.problems])
    except SnapshotError as exc:
        fail(str(exc))
    except OSError as exc:  # a full disk, a read-only folder: the old versions stay
        fail(f"cannot write feature snapshots to {out_uri or settings.features_dir}: "
             f"{exc.strerror or exc}; the previous versions (if any) are unchanged")


@features_app.command("describe")
def describe_features_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of Markdown.")] = False,
) -> None:
    """Print the feature catalogue (docs/features.md is this output)."""
    from features.build import feature_groups
    from features.catalogue import all_features, describe_markdown

    groups = feature_groups(load_settings().feature_spec())
    if as_json:
        typer.echo(json.dumps([f.__dict__ for f in all_features(groups)], indent=2))
    else:
        typer.echo(describe_markdown(groups), nl=False)


def kpis_cmd(
    by: Annotated[str, typer.Option(help="Comma list of month, segment, owner.")] = "month",
    data_dir: DataDir = None,
) -> None:
    """Account KPIs from the raw tables: MRR/ARR, churn, renewal, retention, lifetime value."""
    from features.pipeline import compute_and_store_kpis, kpi_groupings
    from features.sources import ContractError

    settings = load_settings(data_dir)
    try:
        groups = kpi_groupings(by)
    except ValueError as exc:
        fail(f"--by: {exc}", 2)
    try:
        frame, path = compute_and_store_kpis(settings, groups)
    except ContractError as exc:
        fail_contract(settings, exc)
    print_kpis(frame)
    console.print(f"written {len(frame):,} rows to {path}")


KPI_SHOWN = {  # column -> (header, format)
    "month": ("month", "month"), "segment": ("segment", "text"), "owner": ("owner", "owner"),
    "accounts_start": ("accounts", "count"), "arr_end": ("ARR", "money"),
    "logo_churn_rate": ("logo churn", "pct"), "revenue_churn_rate": ("rev. churn", "pct"),
    "renewal_rate": ("renewal", "pct"), "net_revenue_retention": ("NRR", "pct"),
    "clv_ttm": ("CLV (ttm)", "money"),
}


def print_kpis(frame, last_months: int | None = None) -> None:
    """The KPI table as account managers read it (monthly rates; CLV on trailing 12 months)."""
    if last_months:
        keep = sorted(frame["month"].unique())[-last_months:]
        frame = frame[frame["month"].isin(keep)]
    shown = [c for c in KPI_SHOWN if c in frame.columns]
    table = RichTable(title="account KPIs (monthly)", box=box.SIMPLE_HEAD)
    for col in shown:
        header = KPI_SHOWN[col][0]
        table.add_column(header, justify="right", no_wrap=True, min_width=len(header))
    for record in frame[shown].to_dict("records"):
        table.add_row(*[_fmt(record[c], KPI_SHOWN[c][1]) for c in shown])
    out.print(table)


def _fmt(value, kind: str) -> str:
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return "unassigned" if kind == "owner" else "-"
    if kind == "month":
        return pd.Timestamp(value).strftime("%Y-%m")
    if kind == "pct":
        return f"{100 * float(value):.1f}%"
    if kind == "money":
        value = float(value)
        for unit, size in (("M", 1e6), ("k", 1e3)):
            if abs(value) >= size:
                return f"{value / size:,.1f}{unit}"
        return f"{value:,.0f}"
    if kind == "count":
        return f"{int(value):,}"
    return str(value)
