"""What every package's commands share: the --data-dir option, date options, consoles, ``fail``.

Each package owns its commands (features/cli.py, training/cli.py, serving/*_cli.py); they all
report the same way: tables on stdout (``out``), progress and errors on stderr (``console``), bad
input as one ``error:`` line per problem and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer
from rich.console import Console

if TYPE_CHECKING:  # pydantic-settings costs ~0.5 s to import: not for `--help`
    from features.settings import Settings

S = TypeVar("S", bound="Settings")

console = Console(stderr=True)
# Piped output (CI logs, files) gets room for the tables instead of 80 columns.
out = Console(width=None if sys.stdout.isatty() else 120)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default: PROPENSITY_DATA_DIR or ./data)."),
]


def iso_date(value: str | date) -> date:
    """Parse a YYYY-MM-DD option; a bad value is a usage error (exit 2) naming the value."""
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r}: not a date (YYYY-MM-DD)") from None


def date_option(*names: str, help: str) -> typer.models.OptionInfo:  # noqa: A002 - typer's word
    """An option typed as a date: parsed by ``iso_date``, shown as DATE in --help."""
    return typer.Option(*names, parser=iso_date, metavar="DATE", help=help)


def load_settings(data_dir: Path | None = None) -> Settings:
    """The features layer's settings (training and serving commands load their own,
    ``TrainingSettings`` and ``ServingSettings``, with ``settings_of``)."""
    from features.settings import Settings

    return settings_of(Settings, data_dir)


def settings_of(cls: type[S], data_dir: Path | None = None) -> S:
    """``cls`` from env / TOML with the command line's --data-dir on top; a bad setting is one
    ``error:`` line per problem naming the key (exit 2), not a traceback."""
    import tomllib

    from pydantic import ValidationError

    from features.settings import config_file

    try:
        return cls.load(data_dir)
    except tomllib.TOMLDecodeError as exc:
        fail(f"{config_file()}: not valid TOML ({exc})", 2)
    except ValidationError as exc:
        fail([f"setting {'.'.join(map(str, e['loc']))}: {_problem(e)} (from PROPENSITY_* or "
              f"{config_file()})" for e in exc.errors()], 2)


def _problem(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "no such setting"
    return error["msg"]


def contract_failure(raw_dir: Path | str, exc: Exception) -> list[str]:
    """The lines a command prints for raw data it cannot use: one for a file that cannot be
    read at all, else a count and one line per broken rule."""
    from features.sources import RawFileError

    if isinstance(exc, RawFileError):
        return exc.problems
    problems = getattr(exc, "problems", [str(exc)])
    return [f"{raw_dir}: {len(problems)} contract violation(s)", *problems]


def fail(lines: list[str] | str, code: int = 1) -> NoReturn:
    """Report bad input on stderr and exit non-zero."""
    from rich.markup import escape

    for line in [lines] if isinstance(lines, str) else lines:  # [brackets] in a line are text
        console.print(f"[red]error:[/red] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
