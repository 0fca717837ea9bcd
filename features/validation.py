"""Checking raw tables against the contract, in SQL, before anything is built on them.

Every rule runs as DuckDB SQL over the ``src_<table>`` views (the files as given), with
``TRY_CAST`` so that a bad value is counted rather than crashing a reader, and without pulling
rows into pandas: the same code checks a 300-row fixture and a 50M-row event table. The
row-level rules of a table (types, nulls, ranges, vocabularies, order, extraction time, foreign
keys) share one scan that only counts; examples are fetched afterwards for the rules that failed,
so a valid table set costs one scan per table (plus a key query for keyed tables). For a Parquet
file the scan is two queries, the foreign keys (a join) apart from the other rules, each counting
only the rows that break one of its rules (``WHERE`` any of them): DuckDB then skips every row
group whose statistics prove those rules hold (no nulls, values within range, stamps before the
extraction), which on a valid file is most of the work (usage events of 30,000 accounts: 1.0 ->
0.25 CPU-s); the counts are the same, since every row that breaks a rule passes the ``WHERE``.

All violations are reported at once, in a stable order: tables in contract order, then within a
table missing columns, the row-level rules column by column, order rules, duplicate keys.

A violation is an **error** (the data would give wrong features or labels: keys, orphans,
types, stamps after extraction, negative money, end before start) or a **warning** (only
unusual: an absent optional table, null owners or regions, an undocumented billing period).
Loading refuses errors only; the warnings travel with the tables (``RawTables.warnings``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: `propensity data describe` reads the rule names (~0.5 s)
    import duckdb

from features.contract import DUCKDB_TYPES, TABLES, Column, Table
from features.sources import ContractError, RawFileError, RawTables, open_raw, table_file

# Rule names: stable identifiers to filter on; the specifics go in ``Violation.detail``.
MISSING_TABLE = "missing required table"
MISSING_COLUMN = "missing column"
WRONG_TYPE = "wrong type"
UNPARSABLE = {"date": "unparsable date", "timestamp": "unparsable timestamp"}
NULL_VALUE = "null value"
NEGATIVE = "negative value"
BELOW_MIN = "below minimum"
ABOVE_MAX = "above maximum"
AFTER_EXTRACTION = "after extraction time"
ORPHAN = "orphan foreign key"
SELF_REFERENCE = "references itself"
OUT_OF_ORDER = "out of order"
DUPLICATE_KEY = "duplicate key"
EMPTY_LABEL = "empty label"
# Warnings
ABSENT_OPTIONAL = "optional table absent"
NULL_NOTED = "null values"
UNDOCUMENTED = "undocumented value"

ERROR, WARNING = "error", "warning"

MAX_EXAMPLES = 3
#: Tables validated at once, each on its own cursor (``validate``).
VALIDATION_WORKERS = 2


@dataclass(frozen=True)
class Violation:
    """One broken rule of one table (or column): how many rows, and a few of them by key.

    ``examples`` are values of ``example_by`` (the table's key, or for keyless tables the
    account and the row's timestamp), a composite one written as ``"A1, 2024-01-05 00:00:00"``.
    """

    table: str
    column: str | None
    rule: str
    count: int
    examples: tuple[str, ...]
    detail: str = ""
    example_by: tuple[str, ...] = ()
    level: str = ERROR

    def message(self) -> str:
        """One readable line, e.g. ``subscriptions.mrr: negative value (rule: mrr >= 0): 3 rows,
        e.g. subscription_id=S1, S2, S3``."""
        text = self.table if self.column is None else f"{self.table}.{self.column}"
        text += f": {self.rule}"
        if self.detail:
            text += f" (rule: {self.detail})"
        if self.count:
            text += f": {self.count} {'row' if self.count == 1 else 'rows'}"
        if self.examples and self.example_by:
            text += f", e.g. {_examples_text(self.example_by, self.examples)}"
        return text


def _examples_text(by: tuple[str, ...], examples: tuple[str, ...]) -> str:
    if len(by) == 1:
        return f"{by[0]}={', '.join(examples)}"
    return f"({', '.join(by)})=" + ", ".join(f"({e})" for e in examples)


def load_tables(raw_dir: Path, con: duckdb.DuckDBPyConnection | None = None) -> RawTables:
    """The raw tables of ``raw_dir`` as typed views, or ``ContractError`` listing every problem.

    Nothing is written: the files are only read through DuckDB views.
    """
    raw = open_raw(Path(raw_dir), con)
    violations = validate(raw)
    errors = [v.message() for v in violations if v.level == ERROR]
    if errors:
        raise ContractError(errors)
    raw.warnings = tuple(v.message() for v in violations if v.level == WARNING)
    raw._create_typed_views()
    return raw


def validate(raw: RawTables) -> list[Violation]:
    """Every contract violation of the ``src_<table>`` views of ``raw``, in a stable order.

    Over files, the tables are checked ``VALIDATION_WORKERS`` at a time, each on its own cursor,
    the largest file first: most tables are one Parquet row group, which DuckDB scans on one
    thread, so one after the other they left a core idle (100,000 accounts: ~1.3 s of the
    ~2 s). Frames registered on ``raw.con`` are not seen by its cursors: checked in turn."""
    tables = list(TABLES.values())
    if raw.source_dir is None or VALIDATION_WORKERS < 2:
        found = [_checked(raw, table, raw.con) for table in tables]
    else:
        found = _on_cursors(raw, tables)
    return [violation for violations in found for violation in violations]


def _on_cursors(raw: RawTables, tables: list[Table]) -> list[list[Violation]]:
    """``_checked`` of every table, on ``VALIDATION_WORKERS`` cursors of ``raw.con``, in the
    order of ``tables``; the first failure in that order is raised once all have run."""
    from concurrent.futures import ThreadPoolExecutor

    def check(table: Table) -> list[Violation]:
        cursor = raw.con.cursor()
        try:
            return _checked(raw, table, cursor)
        finally:
            cursor.close()

    largest_first = sorted(tables, key=lambda table: -_file_size(raw, table))
    with ThreadPoolExecutor(VALIDATION_WORKERS, thread_name_prefix="validation") as pool:
        futures = {table.name: pool.submit(check, table) for table in largest_first}
    return [futures[table.name].result() for table in tables]


def _path(raw: RawTables, table: Table) -> Path | None:
    """The file of ``table``, where the tables come from files."""
    return table_file(raw.source_dir, table.name) if raw.source_dir else None


def _file_size(raw: RawTables, table: Table) -> int:
    path = _path(raw, table)
    try:
        return path.stat().st_size if path else 0
    except OSError:  # reported by the check itself
        return 0


def _checked(raw: RawTables, table: Table, con: duckdb.DuckDBPyConnection) -> list[Violation]:
    """The violations of one table, its queries run on ``con``; a file the scan cannot read
    (a page, a row, an encoding) as ``RawFileError``."""
    import duckdb

    try:
        return _validate_table(raw, table, con)
    except duckdb.Error as exc:
        path = _path(raw, table)
        if path is None:
            raise
        raise RawFileError.of(path, exc) from exc


def _validate_table(raw: RawTables, table: Table, con: duckdb.DuckDBPyConnection
                    ) -> list[Violation]:
    if not raw.has(table.name):
        if table.optional:
            return [Violation(table.name, None, ABSENT_OPTIONAL, 0, (),
                              "its features are null", level=WARNING)]
        return [Violation(table.name, None, MISSING_TABLE, 0, ())]
    src_types = _src_types(con, f"src_{table.name}")
    missing = [name for name in table.required_columns if name not in src_types]
    violations = [Violation(table.name, name, MISSING_COLUMN, 0, ()) for name in missing]
    scan = _Scan.of(raw, table, src_types, con)
    violations += scan.run(con)
    violations += _duplicate_keys(con, table, scan)
    return violations


def _src_types(con: duckdb.DuckDBPyConnection, view: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f'DESCRIBE "{view}"').fetchall()}


# --- types ---------------------------------------------------------------------------------
_INT_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
}


def _kind(duckdb_type: str) -> str:
    """The family of a physical column type, which decides how its values are checked."""
    t = duckdb_type.upper().strip('"')
    if t == "NULL":
        return "null"
    if t == "VARCHAR":
        return "string"
    if t == "BOOLEAN":
        return "bool"
    if t in _INT_TYPES:
        return "int"
    if t in ("FLOAT", "DOUBLE") or t.startswith("DECIMAL"):
        return "float"
    if t == "DATE":
        return "date"
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    return "other"


#: Physical kinds whose values may hold the logical type (checked value by value).
_READABLE_FROM: dict[str, set[str]] = {
    "string": {"null", "string", "bool", "int", "float", "date", "timestamp", "other"},
    "int64": {"null", "string", "int", "float"},
    "float64": {"null", "string", "int", "float"},
    "bool": {"null", "string", "bool", "int", "float"},
    "date": {"null", "string", "date", "timestamp"},
    "timestamp": {"null", "string", "date", "timestamp"},
}


def _typed(column: Column, src_type: str) -> tuple[str, str | None]:
    """SQL for the column's value in its logical type, and for "this value is not of that type".

    The second refers to the first as ``"<column>__v"`` (cast once, in the scan's projection)
    and is None when no value can be wrong (the file already has a fitting type). Casts that
    would silently lose information count as wrong: 1.5 for an integer, a time of day in a
    date, NaN or infinity for a float.
    """
    x, v, target = f'"{column.name}"', f'"{column.name}__v"', DUCKDB_TYPES[column.type]
    kind = _kind(src_type)
    if kind not in _READABLE_FROM[column.type]:
        return f"CAST(NULL AS {target})", f"{x} IS NOT NULL"
    if kind == "null" or src_type == target:
        return x, None
    value = f"TRY_CAST({x} AS {target})"
    if column.type == "string" or (column.type == "timestamp" and kind != "string"):
        return value, None  # any value has a text form; a date or timestamp is a timestamp
    if column.type == "date" and kind == "timestamp":
        return value, f"{x} IS NOT NULL AND CAST({x} AS TIMESTAMP) <> {v}"
    lossy = {
        "int64": None if kind == "int" else f"TRY_CAST({x} AS DOUBLE) <> {v}",
        "float64": f"NOT isfinite({v})",
        "bool": f"{x} NOT IN (0, 1)" if kind in ("int", "float") else None,
        "date": f"TRY_CAST({x} AS TIMESTAMP) <> {v}",
    }.get(column.type)
    lossy = "" if lossy is None else f" OR {lossy}"
    return value, f"{x} IS NOT NULL AND ({v} IS NULL{lossy})"


# --- the row-level scan --------------------------------------------------------------------
@dataclass(frozen=True)
class _Check:
    """One row-level rule: a condition over the scan's rows and the violation it stands for."""

    column: str | None
    rule: str
    detail: str
    condition: str
    level: str = ERROR


@dataclass(frozen=True)
class _Scan:
    """The row-level rules of one table, evaluated together over one ``FROM`` clause.

    Rows are ``t`` (raw columns and their typed values ``<column>__v``), left-joined to the set
    of referenced keys of each foreign key (``fk<i>.k``); ``rows_sql`` is ``t`` alone, which
    the rules that do not read the joins need (``parts``).
    """

    table: Table
    from_sql: str
    checks: tuple[_Check, ...]
    example_by: tuple[str, ...]
    rows_sql: str = ""
    parquet: bool = False

    @classmethod
    def of(cls, raw: RawTables, table: Table, src_types: dict[str, str],
           con: duckdb.DuckDBPyConnection) -> _Scan:
        columns = [c for c in table.columns if c.name in src_types]
        selects = []
        checks: list[_Check] = []
        for column in columns:
            value, bad = _typed(column, src_types[column.name])
            selects += [f'"{column.name}"', f'{value} AS "{column.name}__v"']
            checks += _column_checks(table, column, bad, raw.extracted_at)
        joins, fk_checks = _foreign_key_joins(raw, table, src_types, con)
        checks += fk_checks
        checks += _order_checks(table, src_types)
        rows_sql = f'(SELECT {", ".join(selects)} FROM "src_{table.name}") AS t'
        by = table.key or ("account_id", table.known_at)
        example_by = tuple(c for c in by if c in src_types)
        path = _path(raw, table)
        return cls(table, rows_sql + joins, tuple(_ordered(checks, table)), example_by,
                   rows_sql, path is not None and path.suffix == ".parquet")

    def example_sql(self) -> str:
        """SQL text describing a row by ``example_by`` (``NULL`` for a missing value)."""
        parts = [f"coalesce(CAST(t.\"{c}\" AS VARCHAR), 'NULL')" for c in self.example_by]
        return f"concat_ws(', ', {', '.join(parts)})"

    def run(self, con: duckdb.DuckDBPyConnection) -> list[Violation]:
        counts: dict[int, int] = {}
        for checks, from_sql, where in self.parts():
            if not checks:
                continue
            found = con.execute(
                "SELECT "
                + ", ".join(f"count(*) FILTER (WHERE {c.condition})" for c in checks)
                + f" FROM {from_sql}"
                + (" WHERE " + " OR ".join(f"({c.condition})" for c in checks) if where else "")
            ).fetchone()
            counts.update({id(c): int(n or 0) for c, n in zip(checks, found, strict=True)})
        return [
            Violation(
                self.table.name, check.column, check.rule, counts[id(check)],
                self.examples(con, check.condition), check.detail, self.example_by,
                check.level,
            )
            for check in self.checks
            if counts[id(check)]
        ]

    def parts(self) -> list[tuple[list[_Check], str, bool]]:
        """(rules, FROM clause, whether to keep only the rows breaking one of them) per query.

        One query for every rule, except for a Parquet file: there the rules that read a
        foreign key's join go apart, and each query keeps only its rows that break a rule, so
        that DuckDB can skip the row groups whose statistics rule a violation out (a join's
        result has no statistics; a CSV file none at all, and one scan of it is the cheaper)."""
        if not self.parquet:
            return [(list(self.checks), self.from_sql, False)]
        joined = [c for c in self.checks if c.rule == ORPHAN]
        alone = [c for c in self.checks if c.rule != ORPHAN]
        return [(alone, self.rows_sql, True), (joined, self.from_sql, True)]

    def examples(self, con: duckdb.DuckDBPyConnection, condition: str) -> tuple[str, ...]:
        if not self.example_by:
            return ()
        rows = con.execute(
            f"SELECT DISTINCT {self.example_sql()} AS ex FROM {self.from_sql} "
            f"WHERE {condition} ORDER BY ex LIMIT {MAX_EXAMPLES}"
        ).fetchall()
        return tuple(r[0] for r in rows)


def _column_checks(
    table: Table, column: Column, bad: str | None, extracted_at: datetime | None
) -> list[_Check]:
    """Type, null, range, vocabulary and extraction-time rules of one column."""
    name, v = column.name, f'"{column.name}__v"'
    checks = []
    if bad is not None:
        rule = UNPARSABLE.get(column.type, WRONG_TYPE)
        checks.append(_Check(name, rule, f"{name} is {column.type}", bad))
    if not column.nullable:
        checks.append(_Check(name, NULL_VALUE, f"{name} is not null", f'"{name}" IS NULL'))
    elif column.null_note:
        checks.append(_Check(name, NULL_NOTED, f"null {name} is {column.null_note}",
                             f'"{name}" IS NULL', WARNING))
    if column.label:
        checks.append(_Check(name, EMPTY_LABEL, f"{name} is a non-empty label",
                             f"trim(CAST({v} AS VARCHAR)) = ''"))
    if column.min is not None:
        rule = NEGATIVE if column.min == 0 else BELOW_MIN
        checks.append(_Check(name, rule, f"{name} >= {column.min:g}", f"{v} < {column.min!r}"))
    if column.max is not None:
        checks.append(
            _Check(name, ABOVE_MAX, f"{name} <= {column.max:g}", f"{v} > {column.max!r}")
        )
    if column.documented is not None:
        checks.append(_undocumented(column))
    stamps = (table.known_at, *table.later_known)
    if extracted_at is not None and name in stamps and column.type in ("date", "timestamp"):
        # Only the columns that stamp when something happened: a scheduled end_date may
        # rightly lie after the extraction.
        stamp = extracted_at.isoformat(sep=" ")
        checks.append(
            _Check(
                name, AFTER_EXTRACTION, f"{name} < {stamp}",
                f"CAST({v} AS TIMESTAMP) >= TIMESTAMP '{stamp}'",
            )
        )
    return checks


def _undocumented(column: Column) -> _Check:
    """A warning for values outside the documented ones. A billing period is compared without
    case or padding, and a whole number of months > 0 counts as documented; other columns are
    compared exactly, as the features compare them."""
    name, v = column.name, f'"{column.name}__v"'
    values = ", ".join(_sql_string(a) for a in column.documented or ())
    months = " or a number of months" if column.months else ""
    condition = f"{f'lower(trim({v}))' if column.months else v} NOT IN ({values})"
    if column.months:
        condition += f" AND coalesce(TRY_CAST(trim({v}) AS INTEGER), 0) <= 0"
    detail = f"{name} in ({', '.join(column.documented or ())}{months}); {column.documented_note}"
    return _Check(name, UNDOCUMENTED, detail, condition, WARNING)


def _foreign_key_joins(
    raw: RawTables, table: Table, src_types: dict[str, str], con: duckdb.DuckDBPyConnection
) -> tuple[str, list[_Check]]:
    """LEFT JOINs to the referenced keys, with the orphan and self-reference rules on them.

    Skipped when the referenced table or column is absent (reported as missing already).
    """
    joins, checks = "", []
    for i, fk in enumerate(table.foreign_keys):
        if fk.column not in src_types or not raw.has(fk.table):
            continue
        if fk.ref_column not in _src_types(con, f"src_{fk.table}"):
            continue
        alias, v = f"fk{i}", f'"{fk.column}__v"'
        joins += (
            f' LEFT JOIN (SELECT DISTINCT CAST("{fk.ref_column}" AS VARCHAR) AS k '
            f'FROM "src_{fk.table}") AS {alias} ON t.{v} = {alias}.k'
        )
        detail = f"{fk.column} in {fk.table}.{fk.ref_column}"
        checks.append(
            _Check(fk.column, ORPHAN, detail, f"t.{v} IS NOT NULL AND {alias}.k IS NULL")
        )
        if fk.table == table.name and fk.ref_column in src_types:
            ref = f't."{fk.ref_column}__v"'
            checks.append(
                _Check(
                    fk.column, SELF_REFERENCE, f"{fk.column} <> {fk.ref_column}",
                    f"t.{v} = CAST({ref} AS VARCHAR)",
                )
            )
    return joins, checks


def _order_checks(table: Table, src_types: dict[str, str]) -> list[_Check]:
    return [
        _Check(
            rule.later, OUT_OF_ORDER, f"{rule.later} >= {rule.earlier}",
            f'CAST("{rule.later}__v" AS TIMESTAMP) < CAST("{rule.earlier}__v" AS TIMESTAMP)',
        )
        for rule in table.order_rules
        if rule.earlier in src_types and rule.later in src_types
    ]


def _ordered(checks: list[_Check], table: Table) -> list[_Check]:
    """Column by column in contract order, order rules last (a stable sort keeps rule order)."""
    position = {name: i for i, name in enumerate(table.column_names)}
    return sorted(checks, key=lambda c: (c.rule == OUT_OF_ORDER, position.get(c.column, -1)))


def _duplicate_keys(con: duckdb.DuckDBPyConnection, table: Table, scan: _Scan) -> list[Violation]:
    """Rows sharing a (non-null) key with another row; examples are the repeated keys.

    Grouped by the key's columns as they are, the example text made for the repeated keys
    only: made for every row, it was most of a table's validation (health scores of 100,000
    accounts, 1.5 M rows keyed by account and time: 0.24-0.47 -> 0.14-0.19 CPU-s). Grouping
    by the columns also keeps keys apart whose texts join alike (``("a, b", "c")`` and
    ``("a", "b, c")``)."""
    if not table.key or scan.example_by != table.key:
        return []
    columns = ", ".join(f't."{c}"' for c in table.key)
    not_null = " AND ".join(f't."{c}" IS NOT NULL' for c in table.key)
    count, examples = con.execute(
        f"SELECT coalesce(sum(n), 0), list(ex ORDER BY ex)[1:{MAX_EXAMPLES}] FROM ("
        f"SELECT {scan.example_sql()} AS ex, n FROM ("
        f"SELECT {columns}, count(*) AS n FROM \"src_{table.name}\" AS t "
        f"WHERE {not_null} GROUP BY ALL HAVING count(*) > 1) AS t)"
    ).fetchone()
    if not count:
        return []
    column = ", ".join(table.key)
    detail = f"{column} is unique"
    return [
        Violation(table.name, column, DUPLICATE_KEY, int(count), tuple(examples), detail, table.key)
    ]


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
