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
same column types (``features.grid_projection``: in Arrow and numpy where that is exact, the
rest in DuckDB). So every date's bytes are its single-date snapshot's; the tests compare
every date. The next chunk's queries run while a chunk is aligned, projected and written.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from features import ahead, families_np, grid_projection
from features.catalogue import ACCOUNT_ID, AS_OF, Cutoff, Feature, FeatureGroup
from features.terms import in_force

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pyarrow as pa

    from features.sources import RawTables

T = TypeVar("T")
DAY = "_grid_day"  # the date's index in its chunk, leading every row fetched here
ROW = "_grid_row"  # an aligned row's position, to check the order of DuckDB's projections
#: Grid rows (date, account) held at once: each costs ~1 kB across its ~90 columns, so a chunk
#: of dates stays near 0.4 GB whatever the size of the book.
CHUNK_ROWS = 400_000
LAST_CHUNK_ROWS = CHUNK_ROWS // 4  # ``_chunks``


class DuplicateRows(ValueError):
    """A family returned two rows for one account and date (a snapshot's join would repeat
    the account). The contract keeps account keys unique, so this is a family's fault: raised,
    naming the family, rather than guessed around."""


def snapshots(tables: RawTables, groups: list[FeatureGroup], dates: list[date],
              present: frozenset[str], workers: int,
              available: Callable[[Feature | FeatureGroup, frozenset[str]], bool],
              typed: Callable[[str, Feature], str], cache: dict | None = None,
              accounts: pa.Table | None = None) -> Iterator[tuple[date, pa.Table]]:
    """Every date's snapshot, in date order (``available`` and ``typed``: ``build``'s rules,
    passed in so that both paths share one text; ``cache``: the numpy forms' sources already
    read, ``families_np.preload``; ``accounts``: every date's accounts already read,
    ``accounts_ahead``)."""
    computed = [g for g in groups if g.cte is not None and available(g, present)]
    with _Cursors(tables, workers) as cursors:
        every = _base(tables.con, dates) if accounts is None else accounts
        chunks = list(_chunks(dates, _counts(every, len(dates))))
        cache = {} if cache is None else cache  # the sources of the numpy forms, read once
        pending = _fetch(cursors, tables.con, computed, chunks[0], cache)
        try:
            first = 0  # the chunk's first date, among all
            for k, chunk in enumerate(chunks):
                families = pending()
                pending = None
                if k + 1 < len(chunks):  # the next chunk's queries run while this one is out
                    pending = _fetch(cursors, tables.con, computed, chunks[k + 1], cache)
                base = _chunk_base(every, first, len(chunk))
                first += len(chunk)
                aligned = _aligned(computed, chunk, base, families)
                del families
                bounds = _day_bounds(base, len(chunk))
                done = grid_projection.project(tables.con, aligned, groups, present, available,
                                               typed, ROW)
                del aligned
                for i, as_of in enumerate(chunk):
                    yield as_of, done.slice(bounds[i], bounds[i + 1] - bounds[i])
        finally:
            if pending is not None:  # left early: wait for the queries, drop their table
                with contextlib.suppress(Exception):
                    pending()


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


def _base(con: duckdb.DuckDBPyConnection, dates: list[date]) -> pa.Table:
    """Every date's accounts (``snapshot_sql``'s base) by date index, then account: one query
    for the grid, which both sizes the chunks and gives each chunk its rows."""
    return con.sql(f"SELECT * FROM ({_base_sql(dates)}) ORDER BY {DAY}, {ACCOUNT_ID}"
                   ).to_arrow_table()


def accounts_ahead(con: duckdb.DuckDBPyConnection, dates: list[date]
                   ) -> Callable[[], pa.Table | None]:
    """Start reading every date's accounts (``_base``) on a cursor of ``con``, in a thread; the
    returned function waits and gives them for ``snapshots``' ``accounts``, or None where the
    cursor could not read them (``ahead.on_cursor``; ``snapshots`` then reads them on ``con``).

    Why: read after the usage one pass, they kept one core busy and the other idle (~0.7 s
    of a 100,000-account grid's 24 monthly dates); read while its reductions run, they fill no
    gap but leave none."""
    return ahead.on_cursor(con, lambda cursor: _base(cursor, dates), "grid-accounts")


def _counts(base: pa.Table, days: int) -> list[int]:
    import numpy as np

    return np.bincount(base[DAY].to_numpy(), minlength=days).tolist()


def _chunk_base(base: pa.Table, first: int, days: int) -> pa.Table:
    """The rows of dates ``first`` to ``first + days`` (exclusive), their date index counted
    from the chunk's first date."""
    import numpy as np
    import pyarrow as pa

    day = base[DAY].to_numpy()
    start, stop = np.searchsorted(day, [first, first + days])
    part = base.slice(start, stop - start)
    return part.set_column(part.schema.get_field_index(DAY), DAY,
                           pa.array(day[start:stop] - first, base.schema.field(DAY).type))


def _chunks(dates: list[date], counts: list[int]) -> Iterator[list[date]]:
    """Consecutive dates of at most ``CHUNK_ROWS`` snapshot rows (at least one date each), of
    about equal rows, the last of at most ``LAST_CHUNK_ROWS`` where the dates need more than
    one chunk.

    Why: each chunk's alignment and projection overlap the next chunk's queries, and the
    caller's writing of its snapshots the chunk after; a chunk of one leftover date after a
    full one left the full one's projection alone on a core (30,000 accounts: ~0.5 s), and
    the caller wrote the last chunk's snapshots with nothing left to overlap them (100,000
    accounts: ~0.45 s with one core idle, for five dates)."""
    split = len(dates)
    if sum(counts) > CHUNK_ROWS:
        tail = counts[-1]
        split -= 1
        while split > 1 and tail + counts[split - 1] <= min(LAST_CHUNK_ROWS, CHUNK_ROWS):
            split -= 1
            tail += counts[split]
    yield from _even(dates[:split], counts[:split])
    if split < len(dates):
        yield dates[split:]


def _even(dates: list[date], counts: list[int]) -> Iterator[list[date]]:
    """The dates in as few chunks as ``CHUNK_ROWS`` allows, cut where their running rows
    cross an equal share; a share still above ``CHUNK_ROWS`` (uneven dates) split greedily."""
    from bisect import bisect_left
    from itertools import accumulate

    total = sum(counts)
    shares = max(1, -(-total // CHUNK_ROWS))
    running = list(accumulate(counts))
    cuts = sorted({min(len(dates), bisect_left(running, total * k / shares) + 1)
                   for k in range(1, shares)} | {0, len(dates)})
    for start, stop in zip(cuts, cuts[1:], strict=False):
        yield from _greedy(dates[start:stop], counts[start:stop])


def _greedy(dates: list[date], counts: list[int]) -> Iterator[list[date]]:
    """Consecutive dates of at most ``CHUNK_ROWS`` snapshot rows (at least one date each)."""
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


def _fetch(cursors: _Cursors, con: duckdb.DuckDBPyConnection, groups: list[FeatureGroup],
           dates: list[date], cache: dict) -> Callable[[], list[pa.Table]]:
    """Start the chunk's queries (each family's rows) and its numpy forms; the returned
    function waits for them and gives every family's rows, in ``groups``' order. A numpy form's
    source is read (once per ``cache``) while the queries run; a source that does not fit its
    form sends the family to SQL after them. The numpy forms run in the workers too, so that
    the main thread aligns, projects and writes the previous chunk meanwhile (numpy and Arrow
    release the GIL in their loops): at 100,000 accounts x 24 monthly dates the main thread's
    CPU 11.7-12.2 -> 8.9-9.1 s, the snapshots' wall time 11.8 -> 9.6 s where a core was free
    (load ~2.3), even where none was (load 3.4); the process's CPU even. Each form is a task
    of its own: the first chunk's, with nothing else to run beside them, took ~0.6 s on one
    core one after the other at 100,000 accounts."""
    in_sql = [g for g in groups if not families_np.has_form(g)]
    table = _DatesTable(con, dates) if any(_grid_form(g) for g in in_sql) else None
    name = table.create() if table else None
    try:
        waiting = [cursors.run([_family_sql(g, dates, name) for g in in_sql])]
        unfit = {g.name for g in groups
                 if families_np.has_form(g) and not families_np.applies(con, g, cache)}
        if unfit:
            sent = [g for g in groups if g.name in unfit]
            waiting.append(cursors.run([_family_sql(g, dates, name) for g in sent]))
            in_sql += sent
        in_numpy = {g.name: cursors.call(partial(_numpy_rows, cursors, g, dates, cache))
                    for g in groups if families_np.has_form(g) and g.name not in unfit}
    except BaseException:
        if table:
            table.drop()
        raise

    def results() -> list[pa.Table]:
        try:
            done = [t for wait in waiting for t in wait()]
            by_name = dict(zip((g.name for g in in_sql), done, strict=True)) | {
                name: wait() for name, wait in in_numpy.items()}
        finally:
            if table:
                table.drop()
        return [by_name[g.name] for g in groups]

    return results


def _numpy_rows(cursors: _Cursors, group: FeatureGroup, dates: list[date], cache: dict
                ) -> pa.Table:
    """``families_np.rows`` of one family, any SQL of its (revenue's rare route) on the
    worker's cursor."""
    return families_np.rows(cursors.cursor(), group, dates, cache)


def _aligned(groups: list[FeatureGroup], dates: list[date], base: pa.Table,
             families: list[pa.Table]) -> grid_projection.Aligned:
    """One row per base row (ordered by date, then account): its account and date, and for
    every family its rows and, per base row, the position of its row there (-1: none). Each
    (date, account) key is an integer below dates x accounts, so a table of that size
    addressed by key gives each family row its base row: no sort, no binary search."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    accounts = pc.unique(base[ACCOUNT_ID])
    keys = _keys(base, accounts)
    size = len(dates) * len(accounts)
    where = np.full(size, -1, dtype=np.int64)
    known = np.flatnonzero(keys >= 0)  # a null account joins no family row, as in SQL
    where[keys[known]] = known
    if not np.array_equal(where[keys[known]], known):  # DISTINCT per date: never
        raise DuplicateRows("the snapshots' accounts repeat an account on one date")
    day = base[DAY].to_numpy()
    aligned = grid_projection.Aligned(
        {ACCOUNT_ID: base[ACCOUNT_ID], AS_OF: pa.array(np.asarray(dates)[day], pa.date32()),
         ROW: pa.array(np.arange(len(day)))}, len(day))
    for group, rows in zip(groups, families, strict=True):
        found = _keys(rows, accounts)
        target = np.where(found >= 0, where[np.maximum(found, 0)], -1) if size else \
            np.full(len(found), -1)
        hit = target >= 0
        target = target[hit]
        if target.size and np.bincount(target, minlength=len(keys)).max() > 1:
            raise DuplicateRows(f"feature group {group.name!r} returned more than one row for "
                                "an account on one date")
        take = np.full(len(keys), -1, dtype=np.int64)
        take[target] = np.flatnonzero(hit)
        aligned.place(group, rows, take)
    return aligned


def _keys(rows: pa.Table, accounts: pa.Array) -> np.ndarray:
    """(date index, account) as one integer; -1 for an account outside the snapshots. Account
    ids given as a dictionary (the numpy forms') are looked up once per distinct account."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = rows[ACCOUNT_ID]
    if pa.types.is_dictionary(ids.type) and ids.num_chunks == 1:
        ids = ids.chunk(0)
        known = pc.fill_null(pc.index_in(ids.dictionary, value_set=accounts, skip_nulls=True),
                             -1).to_numpy().astype(np.int64)
        index = pc.fill_null(ids.indices, -1).to_numpy().astype(np.int64)
        code = np.where(index >= 0, known[np.maximum(index, 0)], -1) if len(known) else \
            np.full(len(index), -1, np.int64)
    else:
        if pa.types.is_dictionary(ids.type):
            ids = ids.cast(pa.string())
        code = pc.index_in(ids, value_set=accounts, skip_nulls=True)
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

    def __enter__(self) -> _Cursors:
        if self.workers > 1:
            self.threads = int(self.con.execute(
                "SELECT current_setting('threads')").fetchone()[0])
            self.con.execute("SET threads = 1")
            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="grid")
        return self

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

    def call(self, work: Callable[[], T]) -> Callable[[], T]:
        """Start ``work`` in a worker; the returned function waits for its result. One worker
        runs it before returning."""
        if self.pool is None:
            done = work()
            return lambda: done
        return self.pool.submit(work).result

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """The connection for work done in the calling worker: its thread's own cursor, made
        once (the connection itself with one worker)."""
        if self.pool is None:
            return self.con
        if not hasattr(self.local, "cursor"):
            self.local.cursor = self.con.cursor()
        return self.local.cursor

    def _one(self, query: str) -> pa.Table:
        return self.cursor().sql(query).to_arrow_table()
