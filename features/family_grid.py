"""The families other than usage for every date of a grid, one query each.

Per date, each family's query scans its source table again, so a grid of N dates pays N scans
of subscriptions, tickets, NPS answers, contacts, activities and accounts. A family's SQL is
written from a boundary (``catalogue.At``); given a :class:`~features.catalogue.GridCutoff`
over a table of the grid's dates, the same text joins each source row to the dates it is
visible at and groups by (as_of, account_id), so one query gives every date's rows.

A family may instead give its own grid form (``FeatureGroup.grid``) where a running formulation is
cheaper: revenue pairs each date only with the terms in force at it (a range join of the dates
with each term's in-force interval), voice reads the latest answer from the interval each answer
is the latest over (a range join again) instead of ranking every earlier answer once per date.
The single-date SQL stays the reference: the tests compare every date of both.

The rows are stored in one table per family of the connection's database (visible to its
cursors), sorted by date so that a date's read skips the other dates' blocks, and each
snapshot's query reads its date's rows from there. The snapshot SQL around them is unchanged,
so a grid date's bytes are its single-date snapshot's whenever each family's values are (the
tests compare every date). DuckDB holds these tables in its buffer pool, under the
connection's ``memory_limit`` (the ``duckdb_memory_limit`` setting), spilling past it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from typing import TYPE_CHECKING

from features.catalogue import AS_OF, Cutoff, FeatureGroup, GridCutoff

if TYPE_CHECKING:
    import duckdb

#: Families computed per date even in a grid: usage has its own one pass
#: (``features.usage_grid``), as its per-date query reads a window of the events, not all rows.
PER_DATE = frozenset({"usage"})


@dataclass(frozen=True)
class GridFamilies:
    """The tables holding every grid date's rows of some families, and the groups that read
    one date from them."""

    dates_table: str
    tables: dict[str, str] = field(default_factory=dict)  # group name -> table

    def group(self, group: FeatureGroup) -> FeatureGroup:
        """``group`` reading its rows from this grid's table (itself if not computed here)."""
        table = self.tables.get(group.name)
        if table is None:
            return group
        return FeatureGroup(group.name, group.family, group.source, group.features,
                            partial(_read, table))

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        for table in [*self.tables.values(), self.dates_table]:
            con.execute(f"DROP TABLE IF EXISTS {table}")


def _read(table: str, cutoff: Cutoff) -> str:
    """One date's rows of a family, as its own query returns them."""
    return f"SELECT * EXCLUDE ({AS_OF}) FROM {table} WHERE {AS_OF} = {cutoff.ts()}"


def grid_sql(group: FeatureGroup, dates_table: str) -> str:
    """The family's query for every date of ``dates_table``, sorted by date: its own grid form
    (``FeatureGroup.grid``) if it has one, else its SQL joined to the dates."""
    assert group.cte is not None
    query = group.grid(dates_table) if group.grid else group.cte(GridCutoff(dates_table))
    return f"SELECT * FROM ({query}) ORDER BY {AS_OF}"


def prepare(con: duckdb.DuckDBPyConnection, groups: list[FeatureGroup], dates: list[date]
            ) -> GridFamilies:
    """Compute ``groups`` (those with a query, but not ``PER_DATE``) for every date and store
    them in tables of ``con``'s database; the caller drops them with ``GridFamilies.drop``.
    On an error nothing is left behind."""
    name = f"_grid_{uuid.uuid4().hex[:12]}"
    days = ", ".join(f"(TIMESTAMP '{d:%Y-%m-%d} 00:00:00')" for d in sorted(set(dates)))
    grid = GridFamilies(f"{name}_dates")
    try:
        con.execute(f"CREATE TABLE {grid.dates_table} AS SELECT * FROM (VALUES {days}) "
                    f"t({AS_OF})")
        for group in groups:
            if group.cte is None or group.name in PER_DATE:
                continue
            table = f"{name}_{group.name}"
            grid.tables[group.name] = table
            con.execute(f"CREATE TABLE {table} AS {grid_sql(group, grid.dates_table)}")
    except BaseException:
        grid.drop(con)
        raise
    return grid
