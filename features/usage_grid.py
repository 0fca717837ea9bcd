"""The usage family for every date of a grid in one pass over the events.

Per date, the usage query reduces the events of its last 180 days again, so a grid pays about
one scan and one aggregation of the events per date. Here DuckDB reduces the events once, into
tables of the database, per (account, interval between two window bounds: a date T or T - w for
a volume window w) the per-type quantities and the last active day, and per (account, user,
interval between two probe days) the last active day (and the same per (account, undeclared
type) when the volumes show such events); each reduction runs per span of about 64 days, so
that its hash groups stay small. Every window of every date then comes from prefix sums over
the intervals (numpy, dense accounts x bounds arrays: a window's sum is C(T) - C(T - w)), and
distinct users from the last active days: a user counts at T for w when its last active day
before T is at or after T - w, and each row of last days holds for a range of probes, so the
counts are a difference array summed along the probes.

The result has the same values as the per-date query (integer sums are exact whatever the
grouping); its derived columns (trend, breadth) are computed by SQL from the same integer
types as there, so a grid date's snapshot equals the single-date snapshot byte for byte.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from features.catalogue import ACCOUNT_ID, AS_OF, Cutoff, FeatureGroup, sql_text
from features.catalogue import event_type_key as type_key
from features.families.usage import BREADTH_WINDOWS, USER_WINDOWS, UsageWindows

if TYPE_CHECKING:
    from collections.abc import Iterator

    import duckdb
    import numpy as np
    import pyarrow as pa

#: Reduced rows (daily, or last days) per part of the accounts, so that what a part holds in
#: Python stays bounded: 100,000 accounts x 24 months (12 M rows of last days) took 3.7 GB peak
#: in one part, 2.5 GB in 3 parts of 5 M, for the same CPU.
PART_ROWS = 4_000_000
#: Cells of the (accounts x intervals) arrays of the window sums per part: 100,000 accounts x
#: 104 intervals (24 monthly dates) is 10.4 M, 83 MB an array.
PART_CELLS = 16_000_000
#: Parts of the accounts computed at once, each on its own cursor (numpy, Arrow and DuckDB's
#: reads release the GIL), and the reduced rows from which a grid is split into at least that
#: many parts so that both cores work on it (docs/benchmarks.md, "The usage one pass's parts").
PART_WORKERS = 2
PARALLEL_MIN_ROWS = 1_000_000
#: ...and at least this many parts per worker: parts are equal ranges of account ids, not of
#: rows (older accounts hold more), so two parts at 30,000 accounts took 1.86 and 1.14 s and
#: left a core idle for the difference; four, taken as each worker finishes one, end closer
#: (the parts' stretch 2.0 -> 1.5 s in a pair of timelines; whole runs even within the noise)
PARTS_PER_WORKER = 2
#: Cursors appending the reductions' spans at once (``_at_once``).
REDUCTION_WORKERS = 2
CHUNK_DAYS = 64  # the reductions run per span of about this many days (``_in_chunks``)
CHANGE_WINDOW = 30  # active_users_change_30d: the 30 days before against the 30 before those


def _ts(day: date) -> str:
    return f"TIMESTAMP '{day:%Y-%m-%d} 00:00:00'"


def _origin(dates: list[date], plan: UsageWindows) -> date:
    """A day before every event the grid reads, so that day numbers from it are positive."""
    longest = max(plan.lookback, *USER_WINDOWS, 2 * CHANGE_WINDOW, *BREADTH_WINDOWS)
    return dates[0] - timedelta(days=longest + 1)


def _day_number(column: str, origin: date) -> str:
    return f"CAST(CAST({column} AS DATE) - DATE '{origin:%Y-%m-%d}' AS INTEGER)"


@dataclass(frozen=True)
class GridUsage:
    """The grid's usage features stored in a table of the connection (one row per account
    and date with events in the lookback), and the group that reads one date from it."""

    table: str
    plan: UsageWindows

    def group(self, usage: FeatureGroup) -> FeatureGroup:
        """``usage`` with its query replaced by a read of this table."""
        return FeatureGroup(usage.name, usage.family, usage.source, usage.features, self.cte)

    def cte(self, cutoff: Cutoff) -> str:
        """One date's rows, with the trend and breadth written as in ``usage.usage_sql``
        (over HUGEINT sums, as there) so that every byte agrees."""
        plan = self.plan

        def q(w: int) -> str:
            return f"CAST(u.q_{w}d AS HUGEINT)"

        breadth = ",\n  ".join(
            "(" + " + ".join(
                [f"CASE WHEN u.events_{type_key(t)}_{w}d > 0 THEN 1 ELSE 0 END"
                 for t in plan.event_types] + [f"u.other_types_{w}d"]
            ) + f") AS feature_breadth_{w}d"
            for w in BREADTH_WINDOWS
        )
        return f"""
SELECT u.{ACCOUNT_ID},
  {", ".join(f"u.q_{w}d AS events_{w}d" for w in plan.counts)},
  {", ".join(f"u.events_{type_key(t)}_{w}d" for t in plan.event_types for w in plan.types)},
  CASE WHEN {q(90)} - {q(30)} > 0 THEN 2.0 * {q(30)} / ({q(90)} - {q(30)}) END
    AS usage_trend_30d,
  u.days_since_last_event,
  {breadth},
  {", ".join(f"u.active_users_{w}d" for w in USER_WINDOWS)},
  u.active_users_change_30d
FROM {self.table} u WHERE u.{AS_OF} = {cutoff.day()}
"""

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(f"DROP TABLE IF EXISTS {self.table}")


def prepare(con: duckdb.DuckDBPyConnection, plan: UsageWindows, dates: list[date]) -> GridUsage:
    """Compute the usage features of every date and store them in a table of ``con``'s
    database (visible to its cursors); the caller drops it with ``GridUsage.drop``.

    DuckDB reduces the events once, into tables of the database (``_Reduced``); the accounts
    are then taken in parts (ranges of their sorted ids) of at most about ``PART_ROWS`` reduced
    rows, so that the rows held in Python stay bounded whatever the size of the book, and in at
    least ``PART_WORKERS * PARTS_PER_WORKER`` parts from ``PARALLEL_MIN_ROWS`` reduced rows,
    ``PART_WORKERS`` of them computed at once. A
    part reads only its rows of the reductions, never the events again (reading the events
    once per part made 100,000 accounts x 24 months cost 59 CPU-s in 4 parts).
    """
    dates = sorted(set(dates))
    name = f"_grid_usage_{uuid.uuid4().hex[:12]}"
    reduced = _Reduced.of(con, plan, dates, name)
    try:
        parts = max(1, -(-reduced.rows // PART_ROWS))
        if reduced.rows >= PARALLEL_MIN_ROWS:
            parts = max(parts, PART_WORKERS * PARTS_PER_WORKER)
        for i, part in enumerate(_parts(con, plan, dates, reduced, parts)):
            con.register(name + "_arrow", part)
            try:
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_arrow" if i == 0
                            else f"INSERT INTO {name} SELECT * FROM {name}_arrow")
            finally:
                con.unregister(name + "_arrow")
    except BaseException:
        con.execute(f"DROP TABLE IF EXISTS {name}")  # nothing partial left behind
        raise
    finally:
        reduced.drop(con)
    return GridUsage(name, plan)


def _parts(con: duckdb.DuckDBPyConnection, plan: UsageWindows, dates: list[date],
           reduced: _Reduced, parts: int) -> Iterator[pa.Table]:
    """``usage_table`` of every part, in order, ``PART_WORKERS`` at a time (one cursor each:
    the reduced tables are tables of the database, which every cursor sees)."""
    from concurrent.futures import ThreadPoolExecutor

    def part(i: int) -> pa.Table:
        cursor = con.cursor()
        try:
            return usage_table(cursor, plan, dates, reduced, parts, i)
        finally:
            cursor.close()

    if parts == 1:
        yield usage_table(con, plan, dates, reduced)
        return
    with ThreadPoolExecutor(min(parts, PART_WORKERS), thread_name_prefix="usage-part") as pool:
        yield from pool.map(part, range(parts))


def _span(since: date, until: date) -> str:
    """The events of [since, until) that are activity (quantity 0 stands for no event)."""
    return (f"e.event_time >= {_ts(since)} AND e.event_time < {_ts(until)} AND e.quantity > 0 "
            f"AND e.{ACCOUNT_ID} IS NOT NULL")


def _probes(dates: list[date], origin: date) -> tuple[np.ndarray, np.ndarray]:
    """(the dates as day numbers, the sorted days at which distinct entities are counted: the
    dates and 30 days before each, for active_users_change_30d)."""
    import numpy as np

    grid = np.array([(d - origin).days for d in dates], dtype=np.int64)
    return grid, np.unique(np.concatenate([grid, grid - CHANGE_WINDOW]))


@dataclass(frozen=True)
class _Reduced:
    """The events of the grid reduced once, in tables of the database, keyed by the account's
    id as the events give it (``accounts``: those of ``subscriptions``, the snapshots' only
    accounts; a part looks the ids up in them, ``usage_table``): ``daily`` per (account,
    interval between window bounds) the quantities and the last active day (``_volumes_sql``),
    ``users`` per (account, user, interval between probes) the last active day
    (``_last_days_sql``), and ``others`` the same per (account, undeclared type), None when the
    volumes show no such events."""

    accounts: str
    daily: str
    users: str
    others: str | None
    rows: int  # of the largest of them, or the cells of the volumes' account x interval
    # arrays in rows' worth (``PART_CELLS``): what a part of the accounts holds in Python

    @classmethod
    def of(cls, con: duckdb.DuckDBPyConnection, plan: UsageWindows, dates: list[date],
           name: str) -> _Reduced:
        first, last = dates[0], dates[-1]
        origin = _origin(dates, plan)
        accounts, daily = name + "_accounts", name + "_daily"
        users, others = name + "_users", name + "_others"
        made: list[str] = []

        def create(table: str, reduction: str, cursor: duckdb.DuckDBPyConnection) -> None:
            cursor.execute(f"CREATE TABLE {table} AS {reduction}")
            made.append(table)

        try:
            con.execute(f"""CREATE TABLE {accounts} AS
SELECT DISTINCT {ACCOUNT_ID} FROM subscriptions WHERE {ACCOUNT_ID} IS NOT NULL""")
            made.append(accounts)
            _, probes = _probes(dates, origin)
            since = first - timedelta(days=max(max(USER_WINDOWS), 2 * CHANGE_WINDOW))
            bounds = _bounds(dates, plan, origin)
            _at_once(con, [
                (daily, _volumes_sql(plan, bounds, origin)),
                (users, _last_days_sql("user_id", since, last, "", origin, probes)),
            ], made)
            declared = " + ".join(f"q{i}" for i in range(len(plan.event_types))) or "0"
            undeclared = con.execute(f"SELECT COUNT(*) FROM {daily} WHERE q > {declared}"
                                     ).fetchall()[0][0] > 0
            if undeclared:  # events of undeclared (or NULL) types: count the types
                create(others, _union(_last_days_sql(
                    "event_type", first - timedelta(days=max(BREADTH_WINDOWS)), last,
                    "AND e.event_type NOT IN ("
                    + ", ".join(sql_text(t) for t in plan.event_types) + ")", origin, probes)),
                    con)
            rows = max(con.execute(f"SELECT COUNT(*) FROM {t}").fetchall()[0][0] for t in made)
            codes = con.execute(f"SELECT COUNT(*) FROM {accounts}").fetchall()[0][0]
        except BaseException:
            for table in made:
                con.execute(f"DROP TABLE IF EXISTS {table}")
            raise
        return cls(accounts, daily, users, others if undeclared else None,
                   max(rows, codes * len(bounds) * PART_ROWS // PART_CELLS))

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        for table in (self.accounts, self.daily, self.users, self.others):
            if table is not None:
                con.execute(f"DROP TABLE IF EXISTS {table}")


def _at_once(con: duckdb.DuckDBPyConnection, tables: list[tuple[str, list[str]]],
             made: list[str]) -> None:
    """Create every table from its spans' reductions (each the rows of its span, disjoint from
    the others', ``_in_chunks``), appending the names to ``made`` as they are created.

    The tables are created empty, then every span is appended by ``REDUCTION_WORKERS``
    single-threaded cursors taking the next span as they finish one (as ``build._snapshots``
    does, one thread per query: two reductions side by side cost 5.0 CPU-s at 30,000 accounts
    x 24 months against 6.4 one after the other with two threads each), so that both cores work
    until the last span, whichever reduction is the dearer (the users' ~9 CPU-s against the
    volumes' ~7 at 100,000 accounts). (One query per table on ``con`` where its cursors do not
    see the events.)"""
    if not _cursors_see_events(con):
        for table, spans in tables:
            con.execute(f"CREATE TABLE {table} AS " + _union(spans))
            made.append(table)
        return
    for table, spans in tables:
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM ({spans[0]}) LIMIT 0")
        made.append(table)
    queue = [f"INSERT INTO {table} {span}" for table, span in _interleaved(tables)]
    previous = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    con.execute("SET threads = 1")
    try:
        _run_all(con, queue, REDUCTION_WORKERS)
    finally:
        con.execute(f"SET threads = {int(previous)}")


def _interleaved(tables: list[tuple[str, list[str]]]) -> list[tuple[str, str]]:
    """The tables' spans taken in turn, so that each table's spans spread over the run."""
    from itertools import zip_longest

    rows = zip_longest(*([(table, span) for span in spans] for table, spans in tables))
    return [item for row in rows for item in row if item is not None]


def _run_all(con: duckdb.DuckDBPyConnection, statements: list[str], workers: int) -> None:
    """Run ``statements`` (in any order) on ``workers`` cursors, each taking the next as it
    finishes one; after a failure no other starts, and the first failure is raised once the
    running ones have finished."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    lock = threading.Lock()
    waiting = list(reversed(statements))
    failed: list[BaseException] = []

    def worker() -> None:
        cursor = con.cursor()
        try:
            while True:
                with lock:
                    if failed or not waiting:
                        return
                    statement = waiting.pop()
                cursor.execute(statement)
        except BaseException as error:
            with lock:
                failed.append(error)
        finally:
            cursor.close()

    with ThreadPoolExecutor(workers, thread_name_prefix="usage-reduction") as pool:
        for future in [pool.submit(worker) for _ in range(workers)]:
            future.result()
    if failed:
        raise failed[0]


def _cursors_see_events(con: duckdb.DuckDBPyConnection) -> bool:
    """False where the events are frames registered on ``con`` (RawTables.from_frames),
    which its cursors do not see."""
    import duckdb

    cursor = con.cursor()
    try:
        cursor.execute("SELECT 1 FROM usage_events LIMIT 0").fetchall()
        return True
    except duckdb.Error:
        return False
    finally:
        cursor.close()


def usage_table(con: duckdb.DuckDBPyConnection, plan: UsageWindows, dates: list[date],
                reduced: _Reduced, parts: int = 1, part: int = 0) -> pa.Table:
    """(account_id, as_of, q_<w>d, events_<type>_<w>d, days_since_last_event, other_types_<w>d,
    active_users_<w>d, active_users_change_30d) of every date (sorted) for the ``part``-th of
    ``parts`` ranges of the sorted account ids, as Arrow.

    Every value is read at the grid's (account, date) probes: window sums as differences of
    prefix sums over the account's intervals (``_window_sums``), distinct counts by
    ``_covering``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    everyone = con.sql(f"SELECT {ACCOUNT_ID} FROM {reduced.accounts} ORDER BY {ACCOUNT_ID}"
                       ).to_arrow_table().column(0).combine_chunks()
    start, stop = part * len(everyone) // parts, (part + 1) * len(everyone) // parts
    unique_accounts = everyone.slice(start, stop - start)
    if parts == 1:
        of_part = ""
    elif stop == start:
        of_part = " WHERE FALSE"
    else:  # a range of the sorted ids: a comparison per row, cheaper than a hash
        of_part = (f" WHERE {ACCOUNT_ID} >= {sql_text(unique_accounts[0].as_py())} "
                   f"AND {ACCOUNT_ID} <= {sql_text(unique_accounts[-1].as_py())}")

    def rows(table: str, columns: str) -> pa.Table:
        """The part's rows of ``table``, with ``a`` the index of their account in
        ``unique_accounts`` (an Arrow look-up: cheaper than a join to codes in DuckDB), without
        the accounts outside ``subscriptions``, which the snapshots have no row for."""
        read = con.sql(f"SELECT {columns} FROM {table}{of_part}").to_arrow_table()
        index = pc.index_in(read.column(ACCOUNT_ID), value_set=unique_accounts)
        read = read.drop_columns([ACCOUNT_ID]).append_column("a", index)
        return read.filter(pc.is_valid(index)) if index.null_count else read

    n = len(unique_accounts)
    origin = _origin(dates, plan)
    grid, probes = _probes(dates, origin)
    columns, seen = _window_sums(rows(reduced.daily, "*"), plan, grid, n,
                                 _bounds(dates, plan, origin))

    def last_days(table: str | None) -> _LastDays:
        if table is None:
            return _LastDays.none()
        return _LastDays.of(rows(table, f"{ACCOUNT_ID}, entity, hash(entity) AS h, probe, last"))

    at_date = np.searchsorted(probes, grid)
    others = last_days(reduced.others)
    for w in BREADTH_WINDOWS:
        columns[f"other_types_{w}d"] = _covering(others, w, n, probes)[:, at_date].ravel()
    del others
    users = last_days(reduced.users)
    covering = {w: _covering(users, w, n, probes) for w in {*USER_WINDOWS, CHANGE_WINDOW}}
    for w in USER_WINDOWS:
        columns[f"active_users_{w}d"] = covering[w][:, at_date].ravel()
    before_30 = covering[CHANGE_WINDOW][:, np.searchsorted(probes, grid - CHANGE_WINDOW)].ravel()
    del covering
    columns["active_users_change_30d"] = columns[f"active_users_{CHANGE_WINDOW}d"] - before_30
    del users

    # the probes with a row, date by date: each date's rows then lie together in the stored
    # table, whose per-date reads skip the other row groups (``GridUsage.cte``)
    by_date = np.arange(n * len(grid), dtype=np.int64).reshape(n, len(grid)).T.ravel()
    keep = by_date[seen[by_date]]
    return pa.table({
        ACCOUNT_ID: unique_accounts.take(pa.array(keep // len(grid))),
        AS_OF: pa.array(dates, pa.date32()).take(pa.array(keep % len(grid))),
        **{name: pa.array(values[keep]) for name, values in columns.items()},
    })


def _bounds(dates: list[date], plan: UsageWindows, origin: date) -> np.ndarray:
    """The sorted day numbers where some window of some date starts or ends (each date T and
    T - w for every volume window w): every window sum is a sum of whole intervals between
    consecutive bounds, so the events need no finer reduction than those intervals (24
    monthly dates: 104 bounds, 0.9 M (account, interval) rows at 30,000 accounts against 3.0 M
    account-days)."""
    import numpy as np

    grid, _ = _probes(dates, origin)
    windows = sorted({0, plan.lookback, *plan.counts, *plan.types, 30, 90})
    return np.unique(np.concatenate([grid - w for w in windows]))


def _window_sums(volumes: pa.Table, plan: UsageWindows, grid: np.ndarray, n: int,
                 bounds: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The windowed sums and days since the last event at every (account, date) probe of the
    ``n`` accounts x ``grid`` days (row-major) from the rows per (account, interval), and which
    probes the per-date query has a row for (events in the lookback).

    Each column goes into an accounts x bounds array (interval k, the days of [bounds[k - 1],
    bounds[k]), in column k), summed along the intervals: column j then holds the sum of the
    days before bounds[j], and a window [T - w, T) is the difference of two columns. No sort
    and no search: the rows are unique per (account, interval)."""
    import numpy as np

    width = len(bounds)
    cell = (volumes.column("a").to_numpy().astype(np.int64) * width
            + volumes.column("iv").to_numpy().astype(np.int64))
    at = {w: np.searchsorted(bounds, grid - w) for w in
          {0, plan.lookback, *plan.counts, *plan.types, 30, 90}}

    def prefix(values: np.ndarray) -> np.ndarray:
        dense = np.zeros(n * width, dtype=np.int64)
        dense[cell] = values
        return np.cumsum(dense.reshape(n, width), axis=1)

    def window_sums(name: str, windows: list[int]) -> dict[int, np.ndarray]:
        sums = prefix(volumes.column(name).to_numpy())
        return {w: (sums[:, at[0]] - sums[:, at[w]]).ravel() for w in windows}

    total_windows = sorted(set(plan.counts) | {30, 90, plan.lookback})
    totals = window_sums("q", total_windows)
    seen = totals[plan.lookback] > 0  # the per-date query's rows
    columns: dict[str, np.ndarray] = {
        f"q_{w}d": totals[w] for w in sorted(set(plan.counts) | {30, 90})}
    del totals
    for i, t in enumerate(plan.event_types):
        for w, values in window_sums(f"q{i}", list(plan.types)).items():
            columns[f"events_{type_key(t)}_{w}d"] = values
    last = np.full(n * width, -1, dtype=np.int64)
    last[cell] = volumes.column("last").to_numpy()
    last = np.maximum.accumulate(last.reshape(n, width), axis=1)
    columns["days_since_last_event"] = (grid - last[:, at[0]]).ravel()
    return columns, seen


def _interval(day: str, bounds: np.ndarray, upto: int) -> str:
    """SQL for the number of ``bounds`` at or before ``day`` (a day number below ``upto``), as
    a lookup in a list: the interval of the day."""
    import numpy as np

    lookup = ", ".join(map(str, np.searchsorted(bounds, np.arange(upto), side="right").tolist()))
    return f"CAST([{lookup}][{day} + 1] AS INTEGER)"


def _volumes_sql(plan: UsageWindows, bounds: np.ndarray, origin: date) -> list[str]:
    """Per (account, interval between ``bounds``, the first to the last): the quantity of events,
    in total and per declared type, and the last active day.
    (BIGINT sums: a HUGEINT would reach numpy as Python objects; a sum past 2^63 fails.)"""
    day = _day_number("e.event_time", origin)
    by_type = ", ".join(
        f"CAST(SUM(CASE WHEN e.event_type = {sql_text(t)} THEN e.quantity ELSE 0 END) AS BIGINT)"
        f" AS q{i}"
        for i, t in enumerate(plan.event_types)
    )
    interval = _interval(day, bounds, int(bounds[-1]))
    cuts = [origin + timedelta(days=int(b)) for b in bounds]
    return _in_chunks(cuts[0], cuts[-1], cuts, lambda a, b: f"""
SELECT e.{ACCOUNT_ID}, {interval} AS iv, MAX({day}) AS last,
  CAST(SUM(e.quantity) AS BIGINT) AS q
  {", " + by_type if by_type else ""}
FROM usage_events e WHERE {_span(a, b)}
GROUP BY ALL""")


def _last_days_sql(entity: str, since: date, until: date, where: str, origin: date,
                   probes: np.ndarray) -> list[str]:
    """Per (account, entity, probe): the last day the entity was active before that probe day
    and on or after the one before it ('probe' = the number of probe days at or before the
    day, looked up in a list). Enough for every distinct count: the last active day before a
    probe is that of the entity's latest row at or before it. Monthly dates make few and long
    intervals; at most one row per distinct (account, entity, day) whatever the dates."""
    day = _day_number("e.event_time", origin)
    probe = _interval(day, probes, (until - origin).days)
    cuts = [origin + timedelta(days=int(p)) for p in probes]
    return _in_chunks(since, until, cuts, lambda a, b: f"""
SELECT e.{ACCOUNT_ID}, e.{entity} AS entity, {probe} AS probe, MAX({day}) AS last
FROM usage_events e WHERE {_span(a, b)} {where}
GROUP BY ALL""")


def _in_chunks(since: date, until: date, cuts: list[date], reduction) -> list[str]:
    """``reduction(a, b)`` of consecutive spans of about ``CHUNK_DAYS`` covering [since,
    until), one query each (``_union``: in one). Their groups are disjoint when no group spans
    a cut: a day for the daily rows (``cuts`` empty: any day), a probe day for the last days. Each
    span's hash table is that much smaller: the whole one pass 9.3 -> 8.6 CPU-s at 30,000
    accounts x 24 months, 46 -> 33 at 100,000 (docs/benchmarks.md)."""
    bounds = [since]
    for cut in cuts or [since + timedelta(days=CHUNK_DAYS * i) for i in range(
            1, (until - since).days // CHUNK_DAYS + 1)]:
        if cut - bounds[-1] >= timedelta(days=CHUNK_DAYS) and cut < until:
            bounds.append(cut)
    bounds.append(until)
    return [reduction(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]


def _union(spans: list[str]) -> str:
    """The spans' reductions as one query."""
    return "\nUNION ALL\n".join(f"({span})" for span in spans)


@dataclass(frozen=True)
class _LastDays:
    """``_last_days_sql``'s rows of a part sorted by (account, entity, probe)."""

    account: np.ndarray  # the account's index in the part
    probe: np.ndarray
    last: np.ndarray
    next_probe: np.ndarray  # the probe of the entity's next row; past every probe if none

    @classmethod
    def of(cls, rows: pa.Table) -> _LastDays:
        """From rows (a, entity, h = DuckDB's hash of the entity, probe, last). The entities
        are told apart by their hash where that is exact, else by a dictionary of the strings
        (``_by_hash``)."""
        import numpy as np

        account = rows.column("a").to_numpy().astype(np.int64)
        probe = rows.column("probe").to_numpy().astype(np.int64)
        last = rows.column("last").to_numpy().astype(np.int64)
        found = _by_hash(rows, account, probe)
        if found is None:
            order, same = _by_dictionary(rows, account, probe)
        else:
            order, same = found
        account, probe, last = account[order], probe[order], last[order]
        next_probe = np.full(len(probe), np.iinfo(np.int32).max, dtype=np.int64)
        next_probe[:-1] = np.where(same, probe[1:], next_probe[:-1])
        return cls(account, probe, last, next_probe)

    @classmethod
    def none(cls) -> _LastDays:
        import numpy as np

        empty = np.zeros(0, dtype=np.int64)
        return cls(empty, empty, empty, empty)


def _by_hash(rows: pa.Table, account: np.ndarray, probe: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray] | None:
    """The order of the rows by (account, entity, probe), and whether each sorted row's entity
    is that of the next row, telling the entities apart by the top bits of their hash (what
    fits beside the account and the probe in one int64: one argsort, no dictionary of 3.7 M
    strings, 0.74 CPU-s at 30,000 accounts x 24 months). Exact or None: two entities of one
    account with the same bits would share a run of equal keys, so the strings are compared
    along the sorted rows, and any run holding two of them gives None."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not len(account):
        return None
    account_bits = int(account.max()).bit_length()
    probe_bits = int(probe.max()).bit_length()
    hash_bits = 63 - account_bits - probe_bits
    if hash_bits < 24:
        return None
    top = (rows.column("h").to_numpy() >> np.uint64(64 - hash_bits)).astype(np.int64)
    entity_key = (account << hash_bits) | top
    # the keys are unique where the result is kept (a repeated key is two entities with the
    # same bits and probe, which the check below refuses), so any sort gives the same order;
    # numpy's stable one (timsort) takes the runs in DuckDB's output: 0.22 against 0.36 CPU-s
    # for a part of 3.7 M rows at 100,000 accounts x 24 months
    order = np.argsort((entity_key << probe_bits) | probe, kind="stable")
    entity_key = entity_key[order]
    same = entity_key[1:] == entity_key[:-1]
    names = rows.column("entity").take(pa.array(order))
    if pa.types.is_null(names.type):  # every entity NULL (a frame without strings)
        names = names.cast(pa.string())
    equal = pc.fill_null(pc.equal(names[1:], names[:-1]), False).to_numpy(zero_copy_only=False)
    missing = pc.is_null(names).to_numpy(zero_copy_only=False)
    equal |= missing[1:] & missing[:-1]
    if np.any(same & ~equal):
        return None
    return order, same


def _by_dictionary(rows: pa.Table, account: np.ndarray, probe: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``_by_hash``'s result from a dictionary of the entity strings (always exact)."""
    import numpy as np
    import pyarrow.compute as pc

    entity = pc.dictionary_encode(rows.column("entity").combine_chunks()).indices
    entity = np.asarray(pc.fill_null(entity, -1).to_numpy(zero_copy_only=False)) + 1
    order = _sort_order(account, entity, probe)
    account, entity = account[order], entity[order]
    return order, (account[1:] == account[:-1]) & (entity[1:] == entity[:-1])


def _sort_order(*keys: np.ndarray) -> np.ndarray:
    """The order sorting by ``keys`` (non-negative int64, the first the most significant): one
    argsort of the keys packed in one integer where their ranges fit 63 bits (about twice as
    fast as a lexsort), else a lexsort."""
    import numpy as np

    if not len(keys[0]):
        return np.zeros(0, dtype=np.int64)
    widths = [int(k.max()).bit_length() for k in keys]
    if sum(widths) > 63:
        return np.lexsort(keys[::-1])
    packed = np.zeros(len(keys[0]), dtype=np.int64)
    for key, width in zip(keys, widths, strict=True):
        packed = (packed << width) | key
    return np.argsort(packed)


def _covering(active: _LastDays, w: int, accounts: int, probes: np.ndarray) -> np.ndarray:
    """Per account and probe day X (an accounts x probes array): entities with an active day
    in [X - w, X).

    That is, whose last active day before X is at or after X - w. A row (probe p, last day l)
    holds that last day for the probes from p up to the entity's next row, and is within the
    window for the probes up to l + w; so each row adds 1 over a range of probes: two entries
    of a difference array per account, summed along the probes (no sort)."""
    import numpy as np

    width = len(probes) + 1
    if not len(active.last):
        return np.zeros((accounts, len(probes)), dtype=np.int64)
    # the probes at or before each day number: a lookup, cheaper than a search per row
    upto = np.searchsorted(probes, np.arange(int(active.last.max()) + w + 1), side="right")
    stop = np.minimum(active.next_probe, upto[active.last + w])
    keep = active.probe < stop
    size = accounts * width
    change = (np.bincount(active.account[keep] * width + active.probe[keep], minlength=size)
              .astype(np.int64)
              - np.bincount(active.account[keep] * width + stop[keep], minlength=size))
    return np.cumsum(change.reshape(accounts, width), axis=1)[:, :-1]
