"""A grid's snapshots assembled from each family's rows for many dates at once.

Per date, a snapshot is one query: a CTE per family, eight hash joins on account_id that carry
every column joined so far, the casts and an ORDER BY. At 30,000 accounts x 24 monthly dates
the joins, planning and result handling were about as costly as the families' own SQL: per
date ~0.16 CPU-s of hash joins (wide rows copied through each join) and ~0.07 s of planning
for a 21,000-row result.

Here each family runs once per chunk of dates (of at most ``CHUNK_ROWS`` snapshot rows): its
single-date SQL for each date as one UNION ALL statement (one plan, the same values), its grid
form where that is cheaper on monthly grids too (``GRID_FORMS``), or its numpy form
(``features.families_np``). Its rows are placed on the chunk's (date, account) rows by position
(integer keys, a binary search and an Arrow ``take``: no hash join), and one projection per
chunk applies ``build.snapshot_sql``'s casts, fills, rounding and derived expressions, over the
same column types. So every date's bytes are its single-date snapshot's; the tests compare
every date. The next chunk's queries run while a chunk is aligned, projected and written.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import TYPE_CHECKING

from features import families_np
from features.catalogue import ACCOUNT_ID, AS_OF, Cutoff, Feature, FeatureGroup
from features.terms import in_force

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pyarrow as pa

    from features.sources import RawTables

DAY = "_grid_day"  # the date's index in its chunk, leading every row fetched here
ROW = "_grid_row"  # an aligned row's position, to check the projection's order
#: Grid rows (date, account) held at once: each costs ~1 kB across its ~90 columns, so a chunk
#: of dates stays near 0.4 GB whatever the size of the book.
CHUNK_ROWS = 400_000


class DuplicateRows(ValueError):
    """A family returned two rows for one account and date (a snapshot's join would repeat
    the account). The contract keeps account keys unique, so this is a family's fault: raised,
    naming the family, rather than guessed around."""


def snapshots(tables: RawTables, groups: list[FeatureGroup], dates: list[date],
              present: frozenset[str], workers: int,
              available: Callable[[Feature | FeatureGroup, frozenset[str]], bool],
              typed: Callable[[str, Feature], str]) -> Iterator[tuple[date, pa.Table]]:
    """Every date's snapshot, in date order (``available`` and ``typed``: ``build``'s rules,
    passed in so that both paths share one text)."""
    computed = [g for g in groups if g.cte is not None and available(g, present)]
    sql = projection_sql(groups, present, available, typed)
    with _Cursors(tables, workers) as run:
        chunks = list(_chunks(dates, _base_counts(tables.con, dates)))
        cache: dict = {}  # the sources of the numpy forms, read once
        pending = _fetch(run, tables.con, computed, chunks[0], cache)
        try:
            for k, chunk in enumerate(chunks):
                base, families = pending()
                pending = None
                if k + 1 < len(chunks):  # the next chunk's queries run while this one is out
                    pending = _fetch(run, tables.con, computed, chunks[k + 1], cache)
                aligned = _aligned(computed, chunk, base, families)
                del families
                bounds = _day_bounds(base, len(chunk))
                done = _in_order(tables.con.from_arrow(aligned).query("a", sql).to_arrow_table())
                del aligned
                for i, as_of in enumerate(chunk):
                    yield as_of, done.slice(bounds[i], bounds[i + 1] - bounds[i])
        finally:
            if pending is not None:  # left early: wait for the queries, drop their table
                with contextlib.suppress(Exception):
                    pending()


def projection_sql(groups: list[FeatureGroup], present: frozenset[str], available, typed
                   ) -> str:
    """``build.snapshot_sql``'s select lists over relation ``a`` of aligned rows (its date,
    ``as_of``, its date index, and a column ``"<group>.<feature>"`` per family column) instead
    of the families' joins; the rows come out by date index, then account."""
    def value(f: Feature, g: FeatureGroup) -> str:
        if not available(f, present):
            return "NULL"
        column = f'a."{g.name}.{f.name}"'
        return f"COALESCE({column}, {f.fill})" if f.fill is not None else column

    inner = [f"a.{ACCOUNT_ID}", f"a.{AS_OF}"] + [
        f'{typed(value(f, g), f)} AS "{f.name}"'
        for g in groups if g.cte is not None for f in g.features
    ]
    outer = ["inner_snapshot.*"] + [
        f'{typed(f.expr if available(f, present) else "NULL", f)} AS "{f.name}"'  # type: ignore[arg-type]
        for g in groups if g.cte is None for f in g.features
    ]
    return (f"SELECT {', '.join(outer)} FROM (\nSELECT {', '.join(inner)}, a.{ROW}\nFROM a\n"
            f") inner_snapshot")


def _in_order(done: pa.Table) -> pa.Table:
    """The projection's rows in the aligned rows' order (date, then account, as DuckDB sorted
    the base), without its row numbers. A projection keeps its input's order on one thread;
    where the rows come back in another, they are put back."""
    import numpy as np

    row = done[ROW].to_numpy()
    done = done.drop_columns([ROW])
    return done if bool(np.all(row[1:] > row[:-1])) else done.take(np.argsort(row))


def _base_sql(dates: list[date]) -> str:
    """The accounts of each date's snapshot (``snapshot_sql``'s base), by date index."""
    return "\nUNION ALL\n".join(
        f"SELECT DISTINCT {i} AS {DAY}, s.{ACCOUNT_ID} FROM subscriptions s "
        f"WHERE {in_force(Cutoff(d).ts())}" for i, d in enumerate(dates))


#: Families whose grid form (``FeatureGroup.grid``) beats their per-date queries on monthly
#: grids too: voice, 0.75 against 1.48 CPU-s at 30,000 accounts x 24 months, 2.9 against 3.9
#: at 100,000 (revenue's is cheaper at 30,000 but dearer at 100,000: docs/benchmarks.md). Voice
#: now has a numpy form (``features.voice_np``); this form serves where its answers do not fit.
GRID_FORMS = frozenset({"voice"})


def _grid_form(group: FeatureGroup) -> bool:
    return group.grid is not None and group.name in GRID_FORMS


def _family_sql(group: FeatureGroup, dates: list[date], table: str | None) -> str:
    """The family's rows for every date, keyed by date index: its grid form over the dates'
    ``table``, or its single-date query for each date, stacked."""
    assert group.cte is not None
    if _grid_form(group) and table:
        return (f"SELECT d.{DAY}, q.* EXCLUDE ({AS_OF}) FROM ({group.grid(table)}) q "  # type: ignore[misc]
                f"JOIN {table} d ON d.{AS_OF} = q.{AS_OF}")
    return "\nUNION ALL\n".join(f"SELECT {i} AS {DAY}, * FROM ({group.cte(Cutoff(d))})"
                                for i, d in enumerate(dates))


class _DatesTable:
    """A table of the chunk's dates (``as_of`` at midnight, and their index) in the
    connection's database, seen by its cursors (``create``, then ``drop``)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, dates: list[date]):
        self.con, self.dates = con, dates
        self.name = f"_grid_dates_{uuid.uuid4().hex[:12]}"

    def create(self) -> str:
        rows = ", ".join(f"({i}, TIMESTAMP '{d:%Y-%m-%d} 00:00:00')"
                         for i, d in enumerate(self.dates))
        self.con.execute(f"CREATE TABLE {self.name} AS SELECT * FROM (VALUES {rows}) "
                         f"t({DAY}, {AS_OF})")
        return self.name

    def drop(self) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {self.name}")


def _base_counts(con: duckdb.DuckDBPyConnection, dates: list[date]) -> list[int]:
    found = dict(con.execute(f"SELECT {DAY}, COUNT(*) FROM ({_base_sql(dates)}) "
                             f"GROUP BY {DAY}").fetchall())
    return [found.get(i, 0) for i in range(len(dates))]


def _chunks(dates: list[date], counts: list[int]) -> Iterator[list[date]]:
    """Consecutive dates of at most ``CHUNK_ROWS`` snapshot rows (at least one date)."""
    chunk: list[date] = []
    rows = 0
    for day, n in zip(dates, counts, strict=True):
        if chunk and rows + n > CHUNK_ROWS:
            yield chunk
            chunk, rows = [], 0
        chunk.append(day)
        rows += n
    if chunk:
        yield chunk


def _fetch(run, con: duckdb.DuckDBPyConnection, groups: list[FeatureGroup], dates: list[date],
           cache: dict) -> Callable[[], tuple[pa.Table, list[pa.Table]]]:
    """Start the chunk's queries (its base rows by date and account, and each family's rows)
    and compute its numpy forms; the returned function waits for the queries and gives the
    base and every family's rows, in ``groups``' order. A numpy form's source is read (once per
    ``cache``) while the queries run; a source that does not fit its form sends the family to
    SQL after them."""
    in_sql = [g for g in groups if not families_np.has_form(g)]
    table = _DatesTable(con, dates) if any(_grid_form(g) for g in in_sql) else None
    name = table.create() if table else None
    try:
        waiting = [run([f"SELECT * FROM ({_base_sql(dates)}) ORDER BY {DAY}, {ACCOUNT_ID}"] + [
            _family_sql(g, dates, name) for g in in_sql])]
        unfit = {g.name for g in groups
                 if families_np.has_form(g) and not families_np.applies(con, g, cache)}
        if unfit:
            sent = [g for g in groups if g.name in unfit]
            waiting.append(run([_family_sql(g, dates, name) for g in sent]))
            in_sql += sent
        in_numpy = {g.name: families_np.rows(con, g, dates, cache)
                    for g in groups if families_np.has_form(g) and g.name not in unfit}
    except BaseException:
        if table:
            table.drop()
        raise

    def results() -> tuple[pa.Table, list[pa.Table]]:
        try:
            base, *done = [t for wait in waiting for t in wait()]
        finally:
            if table:
                table.drop()
        by_name = dict(zip((g.name for g in in_sql), done, strict=True)) | in_numpy
        return base, [by_name[g.name] for g in groups]

    return results


def _aligned(groups: list[FeatureGroup], dates: list[date], base: pa.Table,
             families: list[pa.Table]) -> pa.Table:
    """One row per base row (ordered by date, then account): its account and date, and every
    family column, null where the family has no row for it."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    accounts = pc.unique(base[ACCOUNT_ID])
    keys = _keys(base, accounts)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    day = base[DAY].to_numpy()
    columns = {ACCOUNT_ID: base[ACCOUNT_ID], AS_OF: pa.array(np.asarray(dates)[day], pa.date32()),
               ROW: pa.array(np.arange(len(day)))}
    for group, rows in zip(groups, families, strict=True):
        found = _keys(rows, accounts)
        pos = np.minimum(np.searchsorted(ordered, found), max(len(ordered) - 1, 0))
        hit = (ordered[pos] == found) if len(ordered) else np.zeros(len(found), bool)
        target = order[pos[hit]]
        if target.size and np.bincount(target, minlength=len(keys)).max() > 1:
            raise DuplicateRows(f"feature group {group.name!r} returned more than one row for "
                                "an account on one date")
        take = np.full(len(keys), -1, dtype=np.int64)
        take[target] = np.flatnonzero(hit)
        index = pa.array(take, mask=take < 0)
        for name in group.names:
            columns[f"{group.name}.{name}"] = rows[name].take(index)
    return pa.table(columns)


def _keys(rows: pa.Table, accounts: pa.Array) -> np.ndarray:
    """(date index, account) as one integer; -1 for an account outside the snapshots."""
    import numpy as np
    import pyarrow.compute as pc

    code = pc.index_in(rows[ACCOUNT_ID], value_set=accounts, skip_nulls=True)
    code = pc.fill_null(code, -1).to_numpy().astype(np.int64)
    day = rows[DAY].to_numpy().astype(np.int64)
    return np.where(code >= 0, day * len(accounts) + code, -1)


def _day_bounds(base: pa.Table, days: int) -> np.ndarray:
    """Where each date's rows start in ``base`` (ordered by date), and the end."""
    import numpy as np

    return np.searchsorted(base[DAY].to_numpy(), np.arange(days + 1), side="left")


class _Cursors:
    """Runs a list of queries to Arrow, ``workers`` at a time on single-threaded cursors of the
    connection (one DuckDB query keeps two cores only two thirds busy); one worker uses the
    connection itself (frames registered on it are invisible to its cursors)."""

    def __init__(self, tables: RawTables, workers: int):
        self.con = tables.con
        self.workers = workers
        self.local = threading.local()
        self.pool: ThreadPoolExecutor | None = None
        self.threads: int | None = None

    def __enter__(self) -> Callable[[list[str]], Callable[[], list[pa.Table]]]:
        if self.workers > 1:
            self.threads = int(self.con.execute(
                "SELECT current_setting('threads')").fetchone()[0])
            self.con.execute("SET threads = 1")
            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="grid")
        return self.run

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.con.execute(f"SET threads = {self.threads}")

    def run(self, queries: list[str]) -> Callable[[], list[pa.Table]]:
        """Start the queries; the returned function waits for their results (in order). One
        worker runs them before returning."""
        if self.pool is None:
            done = [self.con.sql(q).to_arrow_table() for q in queries]
            return lambda: done
        futures = [self.pool.submit(self._one, q) for q in queries]
        return lambda: [f.result() for f in futures]

    def _one(self, query: str) -> pa.Table:
        if not hasattr(self.local, "cursor"):
            self.local.cursor = self.con.cursor()
        return self.local.cursor.sql(query).to_arrow_table()
