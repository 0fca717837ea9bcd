"""``propensity data pull``: arguments in, ``features.pull`` does the work, one line per problem."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from features.cli_options import DataDir, fail, load_settings, out


def parse_time(value: str) -> datetime:
    """An ISO date or time; one with an offset is converted to UTC; naive ones are UTC."""
    from datetime import UTC

    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r}: not a time (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, "
                                 f"optionally with an offset such as +02:00)") from None
    return stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo else stamp


def pull_cmd(
    source: Annotated[str, typer.Option(
        "--source", envvar="PROPENSITY_SOURCE", show_default=False, metavar="URI",
        help="A folder of Parquet/CSV files, postgresql://user@host:port/db (password from "
             "PGPASSWORD or ~/.pgpass, or in the URI), or adbc+<driver>:<uri> for another "
             "database.")],
    mapping: Annotated[Path | None, typer.Option(
        "--mapping", help="TOML file mapping the source's tables and columns to the contract's "
                          "(default: the source uses the contract's names).")] = None,
    as_of_extraction: Annotated[datetime | None, typer.Option(
        "--as-of-extraction", parser=parse_time, metavar="TIME",
        help="When the data were extracted (default: the database's clock, a folder's "
             "_manifest.json, else now). No timestamp in the data may be later.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Pull the contract's tables from a source into a new dated export, exports/<time>/, and
    point <data-dir>/raw at it (atomically; earlier exports are kept)."""
    from rich.markup import escape
    from rich.table import Table

    from features.mapping import SourceError, load_mapping
    from features.pull import pull

    settings = load_settings(data_dir)
    try:
        loaded = load_mapping(mapping) if mapping else None
        result = pull(source, settings.data_dir, loaded, as_of_extraction)
    except SourceError as exc:
        fail(str(exc))
    except OSError as exc:  # the data directory: full disk, no permission
        fail(f"cannot write the export under {settings.data_dir}: {exc.strerror or exc}; "
             f"nothing was written and raw/ is unchanged")
    table = Table(title=f"pulled -> {result.export} (extracted_at {result.extracted_at})")
    for col in ("table", "rows", "from"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for name, rows in result.rows.items():
        table.add_row(name, f"{rows:,}", escape(result.origins[name]))
    out.print(table)
    if result.moved_local:
        out.print(f"the previous raw/ folder is kept as {result.moved_local}")
    out.print(f"{settings.raw_dir} -> {result.export}; next: propensity data validate")
