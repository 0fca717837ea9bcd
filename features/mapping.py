"""Mapping files: how a source's tables and columns, in the customer's names, become the contract's.

A mapping is a TOML file with one section per contract table (any table left out is read from a
source table of the contract's own name, when the source has one)::

    [accounts]
    table = "Account"                # the source table, or: query = "SELECT ... FROM ..."
    filter = "NOT IsDeleted"         # optional: rows to keep (an SQL condition)

    [accounts.columns]               # contract column = source column
    account_id = "Id"
    created_at = "CreatedDate"

    [accounts.derived]               # contract column = SQL expression over the source columns
    industry = "coalesce(Industry, 'unknown')"

    [accounts.values.segment]        # contract column's value map: source value = contract value
    "Customer - Direct" = "enterprise"

A ``query`` runs in the source (its own SQL dialect); ``filter`` and ``derived`` expressions are
evaluated by DuckDB over the pulled Arrow batches, whatever the source, and may only be scalar
expressions over the source's columns (no sub-queries, no table functions): they are parsed, not
executed as Python. A contract column not named in ``columns`` or ``derived`` is read from the
source column of the same name.

Every error names the mapping file and line (TOML parsers give no line numbers for values, so the
key's line is found in the file text), the source table or column, and what is missing.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from features.contract import TABLES


class SourceError(ValueError):
    """A source cannot be pulled: one sentence saying what and where (never a password)."""


class MappingError(SourceError):
    """A mapping file is wrong: the sentence starts with the file and line."""


class TableMapping(BaseModel):
    """Where one contract table comes from."""

    model_config = ConfigDict(extra="forbid")

    table: str | None = None
    query: str | None = None
    filter: str | None = None
    columns: dict[str, str] = {}
    derived: dict[str, str] = {}
    values: dict[str, dict[str, str | bool | int | float]] = {}

    @model_validator(mode="after")
    def _one_origin(self) -> TableMapping:
        if (self.table is None) == (self.query is None):
            raise ValueError("give either table = \"...\" or query = \"...\" (exactly one)")
        return self


class MappingModel(BaseModel):
    """The whole file: contract table name -> its mapping."""

    model_config = ConfigDict(extra="forbid")

    tables: dict[str, TableMapping]


@dataclass(frozen=True)
class Mapping:
    """A checked mapping and where each of its keys is written, for error messages."""

    path: Path
    tables: dict[str, TableMapping]
    lines: dict[tuple[str, ...], int]
    sha256: str

    def where(self, *key: str) -> str:
        """``file line N`` for the nearest written key on the path ``key``."""
        for end in range(len(key), 0, -1):
            if key[:end] in self.lines:
                return f"{self.path} line {self.lines[key[:end]]}"
        return str(self.path)


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping file against the contract (not yet against a source)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(f"mapping {path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"mapping {path}: not valid TOML ({exc})") from exc
    lines = key_lines(text)
    found = Mapping(path, {}, lines, hashlib.sha256(text.encode()).hexdigest())
    unknown = sorted(set(data) - set(TABLES))
    if unknown:
        raise MappingError(f"{found.where(unknown[0])}: [{unknown[0]}] is not a contract table "
                           f"(known: {', '.join(TABLES)})")
    try:
        model = MappingModel(tables=data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(str(part) for part in error["loc"][1:])
        raise MappingError(f"{found.where(*loc)}: {'.'.join(loc)}: {_pydantic_message(error)}") \
            from None
    mapping = Mapping(path, model.tables, lines, found.sha256)
    for name, table in mapping.tables.items():
        _check_against_contract(mapping, name, table)
    return mapping


def _pydantic_message(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return ("unknown key (a table section takes table, query, filter, columns, derived, "
                "values)")
    return error["msg"].removeprefix("Value error, ")


def _check_against_contract(mapping: Mapping, name: str, table: TableMapping) -> None:
    contract = TABLES[name]
    for section in ("columns", "derived", "values"):
        for column in getattr(table, section):
            if column not in contract.column_names:
                raise MappingError(
                    f"{mapping.where(name, section, column)}: {name}.{column} is not a column of "
                    f"the contract table {name} (its columns: {', '.join(contract.column_names)})")
    for column in set(table.columns) & set(table.derived):
        raise MappingError(f"{mapping.where(name, 'derived', column)}: {name}.{column} is given "
                           f"twice, in [{name}.columns] and in [{name}.derived]: keep one")
    for key, expression in [(("filter",), table.filter)] + [
        (("derived", column), text) for column, text in table.derived.items()
    ]:
        if expression is not None:
            try:
                expression_columns(expression)
            except ValueError as exc:
                raise MappingError(f"{mapping.where(name, *key)}: {name}.{'.'.join(key)} = "
                                   f"{expression!r}: {exc}") from None


def expression_columns(expression: str) -> set[str]:
    """The column names a scalar SQL expression reads; ``ValueError`` for anything that is not
    a plain expression (a query, a sub-query, a table function, several statements)."""
    import sqlglot
    from sqlglot import exp

    try:
        parsed = sqlglot.parse(expression, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise ValueError(f"not an SQL expression ({str(exc).splitlines()[0]})") from None
    if len(parsed) != 1 or parsed[0] is None:
        raise ValueError("give one SQL expression")
    tree = parsed[0]
    if isinstance(tree, exp.Query | exp.Command | exp.DDL | exp.DML) or any(
        isinstance(node, exp.Query | exp.Subquery | exp.Table) for node in tree.walk()
    ):
        raise ValueError("only a scalar expression over the source's columns is allowed "
                         "(no queries or sub-queries: put those in query = \"...\")")
    return {column.name for column in tree.find_all(exp.Column)}


_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
_KEY = re.compile(r'^\s*((?:"[^"]*"|\'[^\']*\'|[A-Za-z0-9_-]+)'
                  r'(?:\s*\.\s*(?:"[^"]*"|\'[^\']*\'|[A-Za-z0-9_-]+))*)\s*=')
_INLINE_KEY = re.compile(r'[{,]\s*("[^"]*"|\'[^\']*\'|[A-Za-z0-9_-]+)\s*=')


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Line number (1-based) of each table header and key in a TOML text, by its key path
    (first occurrence; inline tables' keys get the line of their table)."""
    lines: dict[tuple[str, ...], int] = {}
    section: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        if header := _HEADER.match(line):
            section = _split_key(header.group(1))
            lines.setdefault(section, number)
            continue
        if key := _KEY.match(line):
            path = section + _split_key(key.group(1))
            lines.setdefault(path, number)
            rest = line[key.end():]
            if rest.lstrip().startswith("{"):
                for inner in _INLINE_KEY.finditer(rest):
                    lines.setdefault(path + (_unquote(inner.group(1)),), number)
    return lines


def _split_key(key: str) -> tuple[str, ...]:
    parts = re.findall(r'"[^"]*"|\'[^\']*\'|[^.\s]+', key)
    return tuple(_unquote(part) for part in parts)


def _unquote(part: str) -> str:
    part = part.strip()
    if len(part) >= 2 and part[0] == part[-1] and part[0] in "\"'":
        return part[1:-1]
    return part
