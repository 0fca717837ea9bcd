"""``data pull``: read the contract's tables from a source into a dated, immutable raw export.

Layout in the data directory::

    exports/<extracted_at>/            one folder per pull, never changed after (files read-only):
        accounts.parquet ...           the contract tables, typed per the contract
        _manifest.json                 extracted_at, pulled_at, the source (password masked),
                                       the mapping's path and sha256, rows per table
    raw -> exports/<extracted_at>      a relative link to the newest pull

A pull writes its export into a hidden staging folder, renames it into ``exports/`` when every
table is written, and then points ``raw`` at it with one rename of a link: ``data validate``,
``features build`` and ``kpis`` read ``raw/`` as before and see the previous export or the new
one, never half of one. A pull that fails leaves nothing behind. A ``raw/`` folder that is not a
link (generated data, files copied by hand) is moved to ``exports/local-<time>/`` once, so that
nothing is lost; every earlier export stays where it is, and any of them can be built from by
pointing ``raw`` at it again.

Each table streams: source batches -> DuckDB (renames, value maps, derived columns, casts to the
contract's types) -> Parquet row groups, so memory stays bounded by a few batches whatever the
table's size.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from features.connectors import Source, open_source
from features.contract import DUCKDB_TYPES, MANIFEST_FILE, TABLES, Table
from features.mapping import Mapping, MappingError, SourceError, TableMapping, expression_columns
from features.store import point_link

EXPORTS = "exports"
ROW_GROUP_ROWS = 512 * 1024
_ERROR_MARK = "@@pull:"

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(),
    "date": pa.date32(), "timestamp": pa.timestamp("us"),
}


def arrow_schema(table: Table) -> pa.Schema:
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in table.columns])


@dataclass
class Plan:
    """How one contract table is read: the source query and an SQL expression per column."""

    table: Table
    origin: str  # the source table, or "the query of [name]" for messages
    sql: str
    expressions: dict[str, str] = field(default_factory=dict)  # contract column -> DuckDB expr
    sources: dict[str, str] = field(default_factory=dict)  # contract column -> what it reads
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    filter: str | None = None
    needed: set[str] = field(default_factory=set)  # source columns read (query plans)
    where: Callable[..., str] | None = None  # mapping key -> "file line N" (mapped tables)
    reading: str = ""  # what a failure of the source query is said to be


@dataclass
class PullResult:
    export: Path
    extracted_at: datetime
    rows: dict[str, int]
    origins: dict[str, str]
    moved_local: Path | None = None


def pull(source_uri: str, data_dir: Path, mapping: Mapping | None = None,
         extracted_at: datetime | None = None) -> PullResult:
    """Pull every contract table the source has into a new export and point ``raw`` at it."""
    data_dir = Path(data_dir)
    source = open_source(source_uri)
    try:
        stamp = extracted_at or source.extracted_at() or datetime.now(UTC).replace(tzinfo=None)
        plans = [plan_table(source, table, mapping) for table in TABLES.values()]
        exports = data_dir / EXPORTS
        exports.mkdir(parents=True, exist_ok=True)
        staging = exports / f".pull-{os.getpid()}-{time.time_ns():x}"
        staging.mkdir()
        try:
            rows = {p.table.name: write_table(source, p, staging) for p in plans if p is not None}
            origins = {p.table.name: p.origin for p in plans if p is not None}
            manifest = {
                "extracted_at": stamp.isoformat(),
                "pulled_at": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
                "source": source.display,
                "mapping": None if mapping is None else {
                    "path": str(mapping.path), "sha256": mapping.sha256},
                "tables": {name: {"rows": rows[name], "from": origins[name]} for name in rows},
            }
            (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
            for path in staging.iterdir():
                path.chmod(0o444)
            export = _publish(staging, exports, stamp)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            with contextlib.suppress(OSError):
                exports.rmdir()  # only when empty: the first pull left nothing behind
            raise
    finally:
        source.close()
    moved = point_raw_at(data_dir, export)
    return PullResult(export, stamp, rows, origins, moved)


def plan_table(source: Source, table: Table, mapping: Mapping | None) -> Plan | None:
    """The plan for ``table``, or None for an optional table the source does not have."""
    spec = mapping.tables.get(table.name) if mapping else None
    if spec is None:
        return _plan_as_named(source, table)
    where = (lambda *key: mapping.where(table.name, *key))  # noqa: E731 - a short closure
    if spec.query is not None:
        return _plan_query(source, table, spec, where)
    return _plan_mapped_table(source, table, spec, where)


def _plan_as_named(source: Source, table: Table) -> Plan | None:
    found = source.find_table(table.name)
    if found is None:
        if table.optional:
            return None
        raise SourceError(f"{source.display} has no table {table.name} (a required contract "
                          f"table; name it so, or map it from another table with --mapping)")
    available = source.table_columns(found)
    plan = Plan(table, found, "")
    for column in table.columns:
        actual = _pick_column(available, column.name)
        if actual is None and column.optional:
            _set(plan, column.name, column.sql_absent, "absent (an optional column)")
            continue
        if actual is None:
            raise SourceError(f"{source.display}: table {found} has no column {column.name} "
                              f"(the contract's {table.name}.{column.name}; map it with "
                              f"--mapping; {found} has {', '.join(available)})")
        _set(plan, column.name, _quote(actual), f"{found}.{actual}")
    plan.sql = source.select(found, [plan.sources[c].split(".")[-1] for c in table.column_names
                                     if plan.expressions[c] != table.column(c).sql_absent])
    return plan


def _plan_mapped_table(source: Source, table: Table, spec: TableMapping, where) -> Plan:
    found = source.find_table(spec.table)
    if found is None:
        raise MappingError(f"{where('table')}: {table.name}.table = {spec.table!r}: "
                           f"{source.display} has no table {spec.table}")
    available = source.table_columns(found)
    plan = _plan_columns(table, spec, available, found, where)
    needed = sorted(plan.needed, key=lambda c: available.index(c))
    plan.sql = source.select(found, needed)
    return plan


def _plan_query(source: Source, table: Table, spec: TableMapping, where) -> Plan:
    reading = f"the query of [{table.name}] ({where('query')})"
    available = source.query_columns(spec.query, reading)
    plan = _plan_columns(table, spec, available, f"the query of [{table.name}]", where)
    plan.sql = spec.query
    plan.reading = reading
    return plan


def _plan_columns(table: Table, spec: TableMapping, available: list[str], origin: str,
                  where) -> Plan:
    """Each contract column's expression over ``available`` source columns, checked."""
    plan = Plan(table, origin, "", where=where)
    for column in table.columns:
        name = column.name
        if name in spec.derived:
            text = spec.derived[name]
            for ref in sorted(expression_columns(text)):
                actual = _pick_column(available, ref)
                if actual is None:
                    raise MappingError(
                        f"{where('derived', name)}: {table.name}.{name} = {text!r} reads "
                        f"{ref}, which {origin} does not have ({_has(origin, available)})")
                plan.needed.add(actual)
            _set(plan, name, f"({text})", f"{origin} expression {text!r}")
        else:
            wanted = spec.columns.get(name, name)
            actual = _pick_column(available, wanted)
            if actual is None and column.optional and name not in spec.columns:
                _set(plan, name, column.sql_absent, "absent (an optional column)")
                continue
            if actual is None:
                if name in spec.columns:
                    raise MappingError(
                        f"{where('columns', name)}: {table.name}.{name} = {wanted!r}: {origin} "
                        f"has no column {wanted} ({_has(origin, available)})")
                raise MappingError(
                    f"{where()}: [{table.name}] gives no source for {table.name}.{name} and "
                    f"{origin} has no column {name}: map it under [{table.name}.columns], or "
                    f"derive it under [{table.name}.derived] (e.g. {name} = \"NULL\" when the "
                    f"source does not know it)")
            plan.needed.add(actual)
            _set(plan, name, _quote(actual), f"{origin}.{actual}")
        if name in spec.values:
            plan.values[name] = {k: _text(v) for k, v in spec.values[name].items()}
    if spec.filter is not None:
        for ref in sorted(expression_columns(spec.filter)):
            actual = _pick_column(available, ref)
            if actual is None:
                raise MappingError(f"{where('filter')}: {table.name}.filter = {spec.filter!r} "
                                   f"reads {ref}, which {origin} does not have "
                                   f"({_has(origin, available)})")
            plan.needed.add(actual)
        plan.filter = spec.filter
    return plan


def _has(origin: str, available: list[str]) -> str:
    return f"{origin} has {', '.join(available)}" if available else f"{origin} has no columns"


def _set(plan: Plan, column: str, expression: str, origin: str) -> None:
    plan.expressions[column] = expression
    plan.sources[column] = origin


def _pick_column(available: list[str], name: str) -> str | None:
    if name in available:
        return name
    folded = [a for a in available if a.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _text(value: str | bool | int | float) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def transform_sql(plan: Plan, types: dict[str, str]) -> str:
    """``SELECT`` of the contract columns from ``src`` (the source batches), each cast to its
    contract type; a value that cannot be cast stops the pull with a message naming the table,
    the column, where it came from and the value. ``types``: DuckDB type of each raw expression."""
    parts = []
    for column in plan.table.columns:
        value = plan.expressions[column.name]
        kind = types[column.name]
        if column.name in plan.values:
            cases = " ".join(f"WHEN {_sql_text(k)} THEN {_sql_text(v)}"
                             for k, v in plan.values[column.name].items())
            value = f"CASE CAST({value} AS VARCHAR) {cases} ELSE CAST({value} AS VARCHAR) END"
            kind = "VARCHAR"
        parts.append(f"{_cast(value, kind, column.name, column.type, plan)} AS "
                     f"{_quote(column.name)}")
    sql = f"SELECT {', '.join(parts)} FROM src"
    if plan.filter:
        sql += f" WHERE ({plan.filter})"
    return sql


_SAFE_CASTS = {  # source DuckDB type -> contract types it always converts to
    "BIGINT": {"int64", "float64", "string"}, "INTEGER": {"int64", "float64", "string"},
    "SMALLINT": {"int64", "float64", "string"}, "TINYINT": {"int64", "float64", "string"},
    "DOUBLE": {"float64", "string"}, "FLOAT": {"float64", "string"},
    "BOOLEAN": {"bool", "string"}, "DATE": {"date", "timestamp", "string"},
    "TIMESTAMP": {"timestamp", "date", "string"}, "TIMESTAMP WITH TIME ZONE": {"timestamp", "date"},
    "TIMESTAMP_NS": {"timestamp"}, "TIMESTAMP_MS": {"timestamp"}, "TIMESTAMP_S": {"timestamp"},
    "VARCHAR": {"string"}, "HUGEINT": {"float64", "string"},
}


def _cast(value: str, kind: str, column: str, logical: str, plan: Plan) -> str:
    target = DUCKDB_TYPES[logical]
    if kind.startswith("DECIMAL"):
        kind = "DOUBLE"
    if logical in _SAFE_CASTS.get(kind, ()):  # cannot fail (the connection's time zone is UTC)
        return f"CAST({value} AS {target})"
    attempt = f"TRY_CAST({value} AS {target})"
    if logical == "timestamp" and kind == "VARCHAR":  # a written UTC offset is honoured
        attempt = f"CAST(TRY_CAST({value} AS TIMESTAMPTZ) AS TIMESTAMP)"
    before = f"{_ERROR_MARK}{plan.table.name}.{column}: the value '"
    after = (f"' of {plan.sources[column]} is not {'an' if logical[0] in 'aeiou' else 'a'} "
             f"{logical}")
    message = f"{_sql_text(before)} || CAST({value} AS VARCHAR) || {_sql_text(after)}"
    return (f"CASE WHEN {value} IS NULL THEN NULL WHEN {attempt} IS NULL THEN "
            f"error({message}) ELSE {attempt} END")


def write_table(source: Source, plan: Plan, folder: Path) -> int:
    """Stream the table's batches through the transform into ``<folder>/<table>.parquet``."""
    import duckdb

    from features.sources import connect

    reader = source.stream(plan.sql,
                           plan.reading or f"reading {plan.table.name} from {plan.origin}")
    con = connect()
    con.execute("SET preserve_insertion_order = true")
    schema = arrow_schema(plan.table)
    path = folder / f"{plan.table.name}.parquet"
    rows = 0
    try:
        src = con.from_arrow(reader)
        con.register("src", src)
        raw = ", ".join(f"{e} AS {_quote(c)}" for c, e in plan.expressions.items())
        try:
            types = dict(zip(plan.expressions, map(str, con.sql(f"SELECT {raw} FROM src").types),
                             strict=True))
            batches = con.sql(transform_sql(plan, types)).to_arrow_reader(ROW_GROUP_ROWS)
            with pq.ParquetWriter(path, schema, compression="zstd") as out:
                buffered: list[pa.RecordBatch] = []
                size = 0
                for batch in batches:
                    buffered.append(batch.cast(schema))
                    size += batch.num_rows
                    if size >= ROW_GROUP_ROWS:
                        out.write_table(pa.Table.from_batches(buffered, schema))
                        rows += size
                        buffered, size = [], 0
                if buffered or rows == 0:
                    out.write_table(pa.Table.from_batches(buffered, schema))
                    rows += size
        except (duckdb.Error, OSError) as exc:
            if source.stream_error is not None:  # the driver failed mid-stream
                raise source.stream_error from None
            if isinstance(exc, duckdb.Error):
                raise _transform_error(plan, exc) from None
            raise  # the export's own disk: reported by the command
    finally:
        con.close()
    return rows


def _transform_error(plan: Plan, exc: Exception) -> SourceError:
    text = str(exc)
    if _ERROR_MARK in text:
        return SourceError(text.split(_ERROR_MARK, 1)[1].splitlines()[0].strip())
    first = " ".join(text.split("\n\n")[0].split())
    if plan.where is None:
        return SourceError(f"{plan.table.name}: reading {plan.origin} fails ({first})")
    return MappingError(f"{plan.where()}: {plan.table.name}: the mapping's expressions fail on "
                        f"{plan.origin} ({first})")


def _publish(staging: Path, exports: Path, stamp: datetime) -> Path:
    """Rename the finished staging folder to ``exports/<stamp>`` (``.2``, ``.3``, ... when
    a pull of the same extraction time exists: exports are never overwritten)."""
    base = stamp.strftime("%Y-%m-%dT%H%M%S")
    for n in range(1, 1000):
        final = exports / (base if n == 1 else f"{base}.{n}")
        try:
            os.rename(staging, final)  # fails if final exists and is not empty
            return final
        except OSError:
            if not final.exists():
                raise
    raise SourceError(f"{exports}: too many exports for {base}")


def point_raw_at(data_dir: Path, export: Path) -> Path | None:
    """Make ``<data_dir>/raw`` a relative link to ``export`` with one rename; a ``raw`` folder
    that is not a link is first moved into ``exports/`` (returned), never deleted."""
    raw = data_dir / "raw"
    moved = None
    if raw.exists() and not raw.is_symlink():
        moved = export.parent / f"local-{datetime.now(UTC):%Y-%m-%dT%H%M%S}"
        raw.rename(moved)
    point_link(raw, os.path.relpath(export, data_dir))
    return moved
