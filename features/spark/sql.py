"""The catalogue's DuckDB SQL carried to Spark SQL with the same results, not just the same syntax.

SQLGlot translates the syntax; three meanings differ between the engines and are rewritten here:

- ``date_diff('month'|'day'|'second', a, b)`` counts *boundaries crossed* in DuckDB, while
  Spark's ``DATEDIFF(unit, a, b)`` counts *whole units elapsed* (Jan 31 -> Feb 29 is 1 month in
  DuckDB, 0 in Spark). Each is spelled out as a boundary difference that Spark computes exactly.
- A literal such as ``2.0`` or ``3600.0`` is DECIMAL in Spark and a division by it is rounded to
  six decimals; DuckDB divides in DOUBLE. Non-integer literals become DOUBLE casts.
- A top-level ``ORDER BY`` is a global sort (an extra shuffle) on Spark; it is dropped and the
  caller sorts where it needs to (the local writer sorts the collected Arrow table).
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp


class SparkSqlError(ValueError):
    """A construct of the feature SQL that has no exact Spark translation here."""


def to_spark_sql(duckdb_sql: str, keep_order: bool = False) -> str:
    """``duckdb_sql`` in Spark's dialect with DuckDB's semantics (see the module docstring)."""
    tree = sqlglot.parse_one(duckdb_sql, read="duckdb")
    if not keep_order:
        tree.set("order", None)
    tree = tree.transform(_exact)
    return tree.sql(dialect="spark")


def _exact(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.DateDiff):
        return _date_diff(node)
    if isinstance(node, exp.Literal) and not node.is_string and not node.is_int:
        return exp.cast(node.copy(), exp.DataType.build("DOUBLE"))
    return node


def _call(name: str, *args: exp.Expression) -> exp.Expression:
    """A function call printed verbatim (SQLGlot must not reinterpret it)."""
    return exp.Anonymous(this=name, expressions=list(args))


def _cast(node: exp.Expression, to: str) -> exp.Expression:
    return exp.cast(node.copy(), exp.DataType.build(to))


def _date_diff(node: exp.DateDiff) -> exp.Expression:
    """DuckDB's ``date_diff(unit, start, end)`` as a Spark boundary difference."""
    end, start = node.this, node.expression
    unit = (node.text("unit") or "day").lower()
    if unit == "day":
        return _call("DATEDIFF", _cast(end, "DATE"), _cast(start, "DATE"))
    if unit == "month":
        def months(value: exp.Expression) -> exp.Expression:
            year = _call("YEAR", _cast(value, "DATE"))
            return exp.Paren(this=exp.Add(
                this=exp.Mul(this=year, expression=exp.Literal.number(12)),
                expression=_call("MONTH", _cast(value, "DATE")),
            ))
        return exp.Paren(this=exp.Sub(this=months(end), expression=months(start)))
    if unit == "second":
        return exp.Paren(this=exp.Sub(
            this=_call("UNIX_SECONDS", _cast(end, "TIMESTAMP")),
            expression=_call("UNIX_SECONDS", _cast(start, "TIMESTAMP")),
        ))
    raise SparkSqlError(f"date_diff unit {unit!r} has no exact Spark translation here")
