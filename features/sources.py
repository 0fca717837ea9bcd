"""Reading the raw tables of a data directory into DuckDB, typed per the contract.

Nothing is pulled into pandas: each table becomes a DuckDB view over its Parquet or CSV file, so
that validation, features and KPIs run as SQL over data of any size.

Two layers of views are created on one connection:
- ``src_<table>``: the file as it is (CSV read as text, so that bad values can be reported
  rather than crashing the reader);
- ``<table>``: the contract columns cast to their logical types, plus any extra columns. Absent
  optional tables become empty typed tables, and ``RawTables.present`` says which were given.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: the describe commands need neither (~1 s of imports)
    import duckdb
    import pandas as pd

from features.contract import DUCKDB_TYPES, MANIFEST_FILE, TABLES, Table


class ContractError(ValueError):
    """The raw data break the contract; ``problems`` holds one readable line per broken rule."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class RawFileError(ContractError):
    """A raw file cannot be read at all (not Parquet, a malformed CSV row, no permission): one
    line naming the file and what is wrong with it, instead of a reader's traceback."""

    def __init__(self, path: Path, problem: str):
        self.path = path
        super().__init__([f"{path}: {problem}"])

    @classmethod
    def of(cls, path: Path, exc: Exception) -> RawFileError:
        """The reader's error (DuckDB or the OS) as one sentence about ``path``."""
        return cls(path, file_problem(path, exc))


@dataclass
class RawTables:
    """A DuckDB connection on which every contract table is a typed view of the same name."""

    con: duckdb.DuckDBPyConnection
    present: frozenset[str]
    extracted_at: datetime | None = None
    source_dir: Path | None = None
    warnings: tuple[str, ...] = ()  # what validation found unusual but not wrong

    def has(self, table: str) -> bool:
        return table in self.present

    def sql(self, query: str, params: list | None = None) -> pd.DataFrame:
        """Run a query and return a (small) result frame."""
        return self.con.execute(query, params or []).df()

    def extracted_date(self) -> pd.Timestamp | None:
        import pandas as pd

        return None if self.extracted_at is None else pd.Timestamp(self.extracted_at)

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def from_frames(
        cls,
        frames: dict[str, pd.DataFrame],
        extracted_at: datetime | None = None,
        con: duckdb.DuckDBPyConnection | None = None,
    ) -> RawTables:
        """Build from in-memory frames (tests, notebooks). Absent optional tables stay empty."""
        con = con or connect()
        for name, frame in frames.items():
            if name not in TABLES:
                raise ContractError([f"{name}: not a contract table (known: {', '.join(TABLES)})"])
            con.register(f"_frame_{name}", frame)
            con.execute(f'CREATE OR REPLACE VIEW "src_{name}" AS SELECT * FROM "_frame_{name}"')
        tables = cls(con=con, present=frozenset(frames), extracted_at=extracted_at)
        tables._create_typed_views()
        return tables

    def _create_typed_views(self) -> None:
        for table in TABLES.values():
            if table.name in self.present:
                self.con.execute(typed_view_sql(table, self.src_types(table.name)))
            else:
                self.con.execute(empty_table_sql(table))

    def src_columns(self, table: str) -> list[str]:
        """Columns of the file as given (contract or not)."""
        return list(self.src_types(table))

    def src_types(self, table: str) -> dict[str, str]:
        """Column name -> DuckDB type of the file as given."""
        rows = self.con.execute(f'DESCRIBE "src_{table}"').fetchall()
        return {r[0]: r[1] for r in rows}


def connect(
    threads: int | None = None, memory_limit: str | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the settings the pipeline relies on."""
    import duckdb

    con = duckdb.connect(":memory:")
    # GLOBAL: a cursor (the grid's and validation's threads) starts from the global value, not
    # from this session's; a local one would read text stamps with an offset in the machine's
    # time zone there (``typed_view_sql`` casts them through TIMESTAMPTZ)
    con.execute("SET GLOBAL TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    con.execute("SET preserve_insertion_order = false")  # results are ordered explicitly
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    return con


def table_file(raw_dir: Path, table: str) -> Path | None:
    """The file holding ``table`` in ``raw_dir`` (Parquet preferred over CSV), if any."""
    for suffix in (".parquet", ".csv"):
        path = raw_dir / f"{table}{suffix}"
        if path.exists():
            return path
    return None


def read_manifest(raw_dir: Path) -> datetime | None:
    """The export's stated extraction time, from ``raw/_manifest.json`` when present."""
    import pandas as pd

    path = raw_dir / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text())["extracted_at"]
        return pd.Timestamp(value).tz_localize(None).to_pydatetime()
    except (KeyError, ValueError, TypeError) as exc:
        raise ContractError(
            [f"{MANIFEST_FILE}: extracted_at missing or not a timestamp ({exc})"]
        ) from exc


def open_raw(raw_dir: Path, con: duckdb.DuckDBPyConnection | None = None) -> RawTables:
    """Expose the files of ``raw_dir`` as ``src_<table>`` views, without checking them.

    Typed views are created by :func:`features.validation.load_tables` once the data pass
    validation; use that function unless you are the validator.
    """
    import duckdb

    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise ContractError([f"raw data directory {raw_dir} does not exist"])
    con = con or connect()
    present = set()
    for table in TABLES.values():
        path = table_file(raw_dir, table.name)
        if path is None:
            continue
        present.add(table.name)
        try:
            con.execute(f'CREATE OR REPLACE VIEW "src_{table.name}" AS SELECT * FROM '
                        f"{_reader(path)}")
        except (duckdb.Error, OSError, UnicodeDecodeError) as exc:
            raise RawFileError.of(path, exc) from exc
    return RawTables(
        con=con, present=frozenset(present), extracted_at=read_manifest(raw_dir), source_dir=raw_dir
    )


def _reader(path: Path) -> str:
    quoted = _sql_text(str(path))
    if path.suffix == ".parquet":
        return f"read_parquet({quoted})"
    # Text on purpose: type errors are then found and reported by validation, value by value.
    # The dialect is the contract's (RFC 4180: comma, double quotes, header row), not sniffed:
    # a sniffer guesses another dialect for a broken file and reports its columns as missing,
    # where a fixed one names the line (an open quote, a row with too few or many fields).
    columns = ", ".join(f"{_sql_text(name)}: 'VARCHAR'" for name in csv_header(path))
    return (f"read_csv({quoted}, header = true, auto_detect = false, delim = ',', "
            f"quote = '\"', escape = '\"', strict_mode = true, columns = {{{columns}}})")


def csv_header(path: Path) -> list[str]:
    """The column names of a CSV file's header row."""
    with path.open(newline="", encoding="utf-8-sig") as file:
        header = next(csv.reader(file), None)
    if not header:
        raise RawFileError(path, "empty file (a CSV needs a header row)")
    return header


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")
_FIELDS = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")


def file_problem(path: Path, exc: Exception) -> str:
    """What is wrong with a raw file, in one sentence, from its reader's error."""
    if isinstance(exc, PermissionError):
        return "cannot be read (permission denied)"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, OSError):
        return f"cannot be read ({exc.strerror or exc})"
    text = str(exc)
    kind = "Parquet" if path.suffix == ".parquet" else "CSV"
    if kind == "CSV" and (line := _CSV_LINE.search(text)):
        where = f"line {line.group(1)}"
        if fields := _FIELDS.search(text):
            return f"{where}: {fields.group(2)} fields where the header has {fields.group(1)}"
        if "unterminated quote" in text:
            return f"{where}: a quoted value is never closed"
        if "utf-8" in text.lower() or "unicode" in text.lower():
            return f"{where}: not UTF-8 text"
        return f"{where}: not a well-formed CSV row"
    if "Permission denied" in text:
        return "cannot be read (permission denied)"
    if path.is_dir():
        return "a directory, not a file"
    if kind == "Parquet" and ("magic bytes" in text or "too small" in text):
        return "not a Parquet file, or cut short (no Parquet footer at its end)"
    first = text.splitlines()[0] if text else type(exc).__name__
    first = re.sub(r"^[A-Za-z ]*Error: ", "", first).strip(" .")
    first = re.sub(r"\s*(?:file\s*)?[\"']" + re.escape(str(path)) + r"[\"']", "", first)
    return f"damaged {kind} data ({first})"


def typed_view_sql(table: Table, src_types: dict[str, str]) -> str:
    """``<table>`` as the contract types of the ``src_<table>`` columns, extras kept as they are,
    an absent optional column as nulls.

    Text timestamps go through TIMESTAMPTZ so that a written UTC offset is honoured (the
    connection's time zone is UTC); naive ones are taken as UTC.
    """
    contract = set(table.column_names)

    def cast(name: str, logical: str) -> str:
        if logical == "timestamp" and src_types.get(name) == "VARCHAR":
            return f'CAST(CAST("{name}" AS TIMESTAMPTZ) AS TIMESTAMP)'
        return f'CAST("{name}" AS {DUCKDB_TYPES[logical]})'

    parts = [f'{cast(c.name, c.type) if c.name in src_types else c.sql_absent} AS "{c.name}"'
             for c in table.columns] + [
        f'"{c}"' for c in src_types if c not in contract
    ]
    select = ", ".join(parts)
    return f'CREATE OR REPLACE VIEW "{table.name}" AS SELECT {select} FROM "src_{table.name}"'


def empty_table_sql(table: Table) -> str:
    cols = ", ".join(f'"{c.name}" {DUCKDB_TYPES[c.type]}' for c in table.columns)
    return f'CREATE OR REPLACE TABLE "{table.name}" ({cols})'
