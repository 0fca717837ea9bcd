"""Commands of the features layer: raw data (generate, validate, describe), snapshots, KPIs."""

from __future__ import annotations

import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.table import Table as RichTable

if TYPE_CHECKING:  # pydantic-settings costs ~0.5 s to import: not for `--help`
    from features.settings import Settings

console = Console(stderr=True)
# Piped output (CI logs, files) gets room for the tables instead of 80 columns.
out = Console(width=None if sys.stdout.isatty() else 120)

data_app = typer.Typer(help="Raw CRM data: generate, validate, describe the contract.",
                       no_args_is_help=True)
features_app = typer.Typer(help="Point-in-time feature snapshots (the offline feature store).",
                           no_args_is_help=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default: PROPENSITY_DATA_DIR or ./data)."),
]


def load_settings(data_dir: Path | None = None) -> Settings:
    """Settings from env / TOML, with the command line's --data-dir on top."""
    from features.settings import Settings

    return Settings(data_dir=data_dir) if data_dir else Settings()


def fail(lines: list[str] | str, code: int = 1) -> NoReturn:
    """Report bad input on stderr and exit non-zero."""
    for line in [lines] if isinstance(lines, str) else lines:
        console.print(f"[red]error:[/red] {line}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def open_validated(settings: Settings):
    """Load and validate the raw tables, or exit with the list of broken rules."""
    from features.sources import ContractError, connect
    from features.validation import load_tables

    con = connect(settings.duckdb_threads, settings.duckdb_memory_limit)
    try:
        return load_tables(settings.raw_dir, con=con)
    except ContractError as exc:
        fail([f"{settings.raw_dir}: {len(exc.problems)} contract violation(s)", *exc.problems])


@data_app.command("generate")
def generate_cmd(
    accounts: Annotated[int, typer.Option(help="Number of accounts.", min=1)] = 2_000,
    months: Annotated[int, typer.Option(help="Months of history.", min=1)] = 24,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: settings.seed).")] = None,
    start: Annotated[str | None, typer.Option(help="First day (default: M months ago).")] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Default: <data-dir>/raw (the true probabilities go to "
                     "the sibling folder truth/)."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Generate a realistic B2B SaaS book of accounts (the embedded default data)."""
    from features.generator import default_start, generate

    settings = load_settings(data_dir)
    first = _parse_date("--start", start) if start else default_start(months)
    if first.day != 1:
        fail(f"--start {first}: the simulated window starts on the first day of a month", 2)
    target = out_dir or settings.raw_dir
    truth = settings.truth_dir if out_dir is None else target.parent / "truth"
    began = time.perf_counter()
    with console.status(f"generating {accounts:,} accounts x {months} months"):
        summary = generate(accounts, months, seed if seed is not None else settings.seed, first,
                           target, truth)
    table = RichTable(title=f"generated in {time.perf_counter() - began:.1f} s -> {target}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in summary.get("rows", {}).items():
        table.add_row(name, f"{rows:,}")
    out.print(table)


@data_app.command("validate")
def validate_cmd(data_dir: DataDir = None) -> None:
    """Check the raw tables against the contract; exit non-zero naming every broken rule."""
    settings = load_settings(data_dir)
    tables = open_validated(settings)
    table = RichTable(title=f"{settings.raw_dir}: valid")
    table.add_column("table")
    table.add_column("rows", justify="right")
    from features.contract import TABLES

    for name in TABLES:
        rows = tables.con.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]
        table.add_row(name, f"{rows:,}" if tables.has(name) else "absent (optional)")
    out.print(table)


@data_app.command("describe")
def describe_data_cmd() -> None:
    """Print the raw data contract as Markdown (docs/data-contract.md is this output)."""
    from features.contract_docs import render_contract_markdown

    typer.echo(render_contract_markdown(), nl=False)


def _parse_date(option: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r}: not a date (YYYY-MM-DD)", 2)


def _grid_dates(as_of: str | None, start: str | None, end: str | None, every: str) -> list[date]:
    from features.build import month_starts

    if as_of and (start or end):
        fail("give either --as-of or --from/--to, not both", 2)
    if as_of:
        return [_parse_date("--as-of", as_of)]
    if not (start and end):
        fail("give --as-of DATE, or --from DATE --to DATE", 2)
    if every != "month":
        fail(f"--every {every!r}: only 'month' is supported", 2)
    dates = month_starts(_parse_date("--from", start), _parse_date("--to", end))
    if not dates:
        fail(f"no first-of-month date between {start} and {end}", 2)
    return dates


@features_app.command("build")
def build_cmd(
    as_of: Annotated[str | None, typer.Option("--as-of", help="One snapshot date.")] = None,
    start: Annotated[str | None, typer.Option("--from", help="Grid start.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Grid end (inclusive).")] = None,
    every: Annotated[str, typer.Option(help="Grid step (month = first of each month).")] = "month",
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
    dates = _grid_dates(as_of, start, end, every)
    target = settings.features_dir
    if engine == "spark":
        built, version, target = build_snapshots_spark(settings, dates, raw, out_uri)
    elif engine != "duckdb":
        fail(f"--engine {engine!r}: choose duckdb or spark", 2)
    elif raw or out_uri:
        fail("--raw and --out go with --engine spark (DuckDB reads <data-dir>/raw)", 2)
    else:
        built, version = build_snapshots(settings, dates)
    summary = RichTable(title=f"feature snapshots -> {target} (catalogue {version})")
    for col in ("as_of", "accounts", "features", "seconds"):
        summary.add_column(col, justify="right")
    for d, rows, n_features, seconds in built:
        summary.add_row(str(d), f"{rows:,}", str(n_features), f"{seconds:.2f}")
    out.print(summary)


def build_snapshots(settings: Settings, dates: list[date]) -> tuple[list[tuple], str]:
    """Validate the raw data, then build and store each snapshot; returns
    ``[(as_of, accounts, features, seconds)]`` and the catalogue version."""
    from rich.progress import Progress

    from features.build import SnapshotError, build_grid, check_as_of, feature_groups
    from features.catalogue import catalogue_version
    from features.store import FeatureStore

    tables = open_validated(settings)
    try:
        for d in dates:
            check_as_of(tables, d)
    except SnapshotError as exc:
        fail(str(exc))
    spec = settings.feature_spec()
    version = catalogue_version(feature_groups(spec))
    store = FeatureStore(settings.features_dir)
    built = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("building snapshots", total=len(dates))
        began = time.perf_counter()
        for d, snapshot in build_grid(tables, dates, spec, settings.build_workers):
            store.write(d, snapshot, version)
            built.append((d, snapshot.num_rows, snapshot.num_columns - 2,
                          time.perf_counter() - began))
            began = time.perf_counter()
            progress.advance(task)
    return built, version


def build_snapshots_spark(
    settings: Settings, dates: list[date], raw: str | None, out_uri: str | None
) -> tuple[list[tuple], str, str]:
    """The Spark build (features.spark_engine), bad input reported as for DuckDB.

    The session is left running: the command's process ends right after, and a caller that
    already had a session (tests, notebooks) keeps it.
    """
    from features.build import SnapshotError
    from features.sources import ContractError
    from features.spark_engine import build_and_store, spark_session

    try:
        spark = spark_session(settings)
    except RuntimeError as exc:
        fail(str(exc))
    try:
        status = f"building {len(dates)} snapshot(s) on Spark ({settings.spark_master})"
        with console.status(status):
            return build_and_store(spark, settings, dates, raw, out_uri)
    except ContractError as exc:
        fail([f"{raw or settings.raw_dir}: {len(exc.problems)} problem(s)", *exc.problems])
    except SnapshotError as exc:
        fail(str(exc))


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
    settings = load_settings(data_dir)
    frame, path = compute_and_store_kpis(settings, by)
    print_kpis(frame)
    console.print(f"written {len(frame):,} rows to {path}")


def compute_and_store_kpis(settings: Settings, by: str):
    """KPIs for the ``by`` groupings, written to <data-dir>/kpis/; returns (frame, path)."""
    from features.kpis import KPI_GROUPINGS, compute_kpis
    from features.store import write_parquet_atomic

    groups = [g.strip() for g in by.split(",") if g.strip()]
    unknown = sorted(set(groups) - set(KPI_GROUPINGS))
    if unknown:
        choices = ", ".join(KPI_GROUPINGS)
        fail(f"--by: unknown grouping {', '.join(unknown)} (choose from {choices})", 2)
    tables = open_validated(settings)
    frame = compute_kpis(tables, by=groups, gross_margin=settings.gross_margin)
    name = "kpis_by_" + "_".join(sorted(set(groups) | {"month"})) + ".parquet"
    return frame, write_parquet_atomic(frame, settings.kpis_dir / name)


KPI_SHOWN = {  # column -> (header, format)
    "month": ("month", "month"), "segment": ("segment", "text"), "owner": ("owner", "text"),
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
        return "-"
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
