"""``propensity run``: the daily job for one date, with a live display in a terminal and one
JSON object per step otherwise (cron, systemd, CI logs)."""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import Annotated

import typer

from features.cli_options import DataDir, console, date_option, fail, settings_of

LOG_FORMATS = ("auto", "rich", "json")
STEP_HELP = "pull, validate, build, score, publish, retain, monitor, retrain, reload"


def run_cmd(
    ctx: typer.Context,
    as_of: Annotated[date | None, date_option(
        "--as-of", help="The run's date (default: today, UTC): the snapshot's boundary.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Redo every step, even those whose output is current.")] = False,
    engine: Annotated[str, typer.Option(
        help="duckdb (one machine) or spark (settings.spark_master; needs the spark extra).")
    ] = "duckdb",
    reasons: Annotated[int, typer.Option(
        help="Reasons per model and account kept in the history (0: none).", min=0, max=20)
    ] = 3,
    reload_url: Annotated[str | None, typer.Option(
        "--reload-url", metavar="URL",
        help="A running server to switch to the new scores: POST <URL>/v1/admin/reload with "
             "the admin key of setting admin_api_key.")] = None,
    no_retrain: Annotated[bool, typer.Option(
        "--no-retrain", help="Report the monitor's retraining and recalibration triggers "
             "without acting on them (setting retrain_enabled switches both off for good).")
    ] = False,
    log_format: Annotated[str, typer.Option(
        "--log-format", help="rich (live steps), json (one object per step on stdout) or auto "
             "(rich in a terminal, json otherwise).")] = "auto",
    data_dir: DataDir = None,
) -> None:
    """The daily job for one date: pull (when a source is configured), validate, build the
    snapshot, score every account into the history, publish, apply retention, reload a
    server. Steps whose output for the date is current are skipped; one run at a time per
    data directory."""
    import logging
    from datetime import UTC, datetime

    from serving.daily.lock import RunLocked
    from serving.daily.run import RunFailed, run_daily
    from serving.daily.steps import RunContext, crm_delivery
    from serving.settings import ServingSettings

    if log_format not in LOG_FORMATS:
        fail(f"--log-format {log_format!r}: choose auto, rich or json", 2)
    if engine not in ("duckdb", "spark"):
        fail(f"--engine {engine!r}: choose duckdb or spark", 2)
    settings = settings_of(ServingSettings, data_dir)
    day = as_of or datetime.now(UTC).date()
    as_json = log_format == "json" or (log_format == "auto" and not sys.stdout.isatty())
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    hooks = ctx.obj if isinstance(ctx.obj, dict) else {}
    run = RunContext(settings, day, engine=engine, force=force, reasons=reasons,
                     reload_url=reload_url, deliver=crm_delivery(settings),
                     retrain=hooks.get("retrain"), recalibrate=hooks.get("recalibrate"),
                     no_retrain=no_retrain)
    reporter = JsonReporter(day) if as_json else RichReporter(day)
    try:
        with reporter:
            run_daily(run, reporter)
    except RunLocked as exc:
        fail(str(exc))
    except RunFailed as exc:
        fail(f"run of {day}: {exc}; nothing of this step was published")
    reporter.summary()


class JsonReporter:
    """One JSON object per finished step on stdout: as_of, step, status, seconds, detail."""

    def __init__(self, as_of: date):
        self.as_of = as_of

    def __enter__(self) -> JsonReporter:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def __call__(self, report) -> None:
        if report.status != "running":
            line = {"as_of": self.as_of.isoformat(), **report.as_dict()}
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()

    def summary(self) -> None:
        return None


class RichReporter:
    """A spinner on the running step and one line per finished step, on stderr."""

    MARKS = {"done": "[green]done[/green]", "skipped": "[dim]skipped[/dim]",
             "failed": "[red]failed[/red]"}

    def __init__(self, as_of: date):
        self.as_of = as_of
        self.status = console.status(f"run {as_of}")
        self.counts: dict[str, int] = {}
        self.seconds = 0.0

    def __enter__(self) -> RichReporter:
        self.status.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.status.__exit__(*exc)

    def __call__(self, report) -> None:
        from rich.markup import escape

        if report.status == "running":
            self.status.update(f"run {self.as_of}: {report.step} ...")
            return
        self.counts[report.status] = self.counts.get(report.status, 0) + 1
        self.seconds += report.seconds
        console.print(f"{report.step:<9} {self.MARKS[report.status]:<25} "
                      f"{report.seconds:6.1f} s  {escape(report.detail)}", highlight=False)

    def summary(self) -> None:
        counts = ", ".join(f"{n} {status}" for status, n in self.counts.items())
        console.print(f"run {self.as_of}: {counts} in {self.seconds:.1f} s")
