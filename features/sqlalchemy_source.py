"""A source for databases with a SQLAlchemy dialect but no ADBC driver: ``sqlalchemy+<URL>``.

``sqlalchemy+mssql+pyodbc://user:password@dsn``, ``sqlalchemy+mysql+pymysql://...``,
``sqlalchemy+sqlite:///crm.db``: the dialect's DBAPI driver must be installed. Rows are fetched
with a server-side cursor where the dialect has one (``stream_results``) in partitions of
``BATCH_ROWS`` and turned into Arrow batches column by column, so memory stays bounded; it is
slower than an ADBC driver, which hands over Arrow directly. Each column's Arrow type is taken
from the first partition (decimals as float64, a column all null there as text).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal

import pyarrow as pa

from features.connectors import BATCH_ROWS, Source, _pick
from features.mapping import SourceError

#: sqlglot dialect for quoting names, by SQLAlchemy's dialect name.
DIALECTS = {"mssql": "tsql", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite",
            "postgresql": "postgres", "oracle": "oracle", "snowflake": "snowflake",
            "bigquery": "bigquery", "redshift": "redshift", "duckdb": "duckdb"}


class SqlAlchemySource(Source):
    """A database through SQLAlchemy (see the module docstring)."""

    def __init__(self, uri: str, url: str):
        super().__init__(uri)
        try:
            import sqlalchemy
        except ImportError:
            raise SourceError(f"source {self.display}: needs SQLAlchemy (pip install "
                              f"sqlalchemy and the dialect's driver)") from None
        self.sa = sqlalchemy
        try:
            self.engine = sqlalchemy.create_engine(url)
            self.conn = self.engine.connect()
        except (sqlalchemy.exc.SQLAlchemyError, ImportError) as exc:
            raise SourceError(f"cannot connect to {self.display}: {self._problem(exc)}") from None
        self.dialect = DIALECTS.get(self.engine.dialect.name, "postgres")
        self.inspector = sqlalchemy.inspect(self.conn)

    def _problem(self, exc: Exception) -> str:
        text = str(getattr(exc, "orig", None) or exc).split("\n[SQL:")[0].splitlines()[0]
        return self.scrub(text)

    def find_table(self, name: str) -> str | None:
        schema, _, table = name.rpartition(".")
        found = _pick(self.inspector.get_table_names(schema=schema or None)
                      + self.inspector.get_view_names(schema=schema or None), table)
        return None if found is None else f"{schema}.{found}" if schema else found

    def table_columns(self, table: str) -> list[str]:
        schema, _, name = table.rpartition(".")
        return [c["name"] for c in self.inspector.get_columns(name, schema=schema or None)]

    def query_columns(self, sql: str, what: str) -> list[str]:
        try:
            result = self.conn.execution_options(stream_results=True).execute(self.sa.text(sql))
        except self.sa.exc.SQLAlchemyError as exc:
            raise SourceError(f"{what} fails in {self.display}: {self._problem(exc)}") from None
        names = list(result.keys())
        result.close()
        return names

    def stream(self, sql: str, what: str) -> pa.RecordBatchReader:
        try:
            result = self.conn.execution_options(stream_results=True).execute(self.sa.text(sql))
            names = list(result.keys())
            partitions = result.partitions(BATCH_ROWS)
            first = next(partitions, [])
        except self.sa.exc.SQLAlchemyError as exc:
            raise SourceError(f"{what} fails in {self.display}: {self._problem(exc)}") from None
        types = [_column_type([row[i] for row in first]) for i in range(len(names))]
        schema = pa.schema([pa.field(n, t) for n, t in zip(names, types, strict=True)])

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                if first:
                    yield _batch(schema, first, what)
                for rows in partitions:
                    yield _batch(schema, rows, what)
            except self.sa.exc.SQLAlchemyError as exc:
                self.stream_error = SourceError(
                    f"{what} fails in {self.display}: {self._problem(exc)}")
                raise self.stream_error from None
            except SourceError as exc:
                self.stream_error = exc
                raise

        return pa.RecordBatchReader.from_batches(schema, batches())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        self.engine.dispose()


def _column_type(values: list) -> pa.DataType:
    """The Arrow type for a column, from its first partition's values."""
    if any(isinstance(v, Decimal) for v in values):
        return pa.float64()
    inferred = pa.array(values).type if values else pa.null()
    return pa.string() if inferred == pa.null() else inferred


def _batch(schema: pa.Schema, rows: list, what: str) -> pa.RecordBatch:
    arrays = []
    for i, field in enumerate(schema):
        values = [row[i] for row in rows]
        if field.type == pa.string():
            values = [v if v is None or isinstance(v, str) else str(v) for v in values]
        elif field.type == pa.float64():
            values = [None if v is None else float(v) for v in values]
        try:
            arrays.append(pa.array(values, type=field.type))
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            odd = next(v for v in values if v is not None and not _fits(v, field.type))
            raise SourceError(f"{what}: column {field.name} holds {field.type} values, then "
                              f"{odd!r}; cast it in a query to one type") from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _fits(value, kind: pa.DataType) -> bool:
    try:
        pa.array([value], type=kind)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return False
    return True
