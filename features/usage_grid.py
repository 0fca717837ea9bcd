"""The usage family for every date of a grid in one pass over the events.

Per date, the usage query reduces the events of its last 180 days again, so a grid pays about
one scan and one aggregation of the events per date. Here DuckDB reduces the events once, into
tables of the database, per (account, day) (per-type quantities) and per (account, user,
interval between two probe days) the last active day (and the same per (account, undeclared
type) when the volumes show such events); each reduction runs per span of about 64 days, so
that its hash groups stay small. Every window of every date then comes from prefix sums over
the daily rows (numpy: a window's sum is C(T) - C(T - w)), and distinct users from the last
active days: a user counts at T for w when its last active day before T is at or after T - w,
and each row of last days holds for a range of probes, so the counts are a difference array
summed along the probes.

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
    import duckdb
    import numpy as np
    import pyarrow as pa

_DAY_BITS = 21  # days after the grid's origin (< 5,700 years) below, the account's code above
#: Reduced rows (daily, or last days) per part of the accounts, so that what a part holds in
#: Python stays bounded: 100,000 accounts x 24 months (12 M rows of last days) took 3.7 GB peak
#: in one part, 2.5 GB in 3 parts of 5 M, for the same CPU.
PART_ROWS = 4_000_000
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
    are then taken in parts (by their code) of at most about ``PART_ROWS`` reduced rows, so
    that the rows held in Python stay bounded whatever the size of the book. A part reads only
    its rows of the reductions, never the events again (reading the events once per part made
    100,000 accounts x 24 months cost 59 CPU-s in 4 parts).
    """
    dates = sorted(set(dates))
    name = f"_grid_usage_{uuid.uuid4().hex[:12]}"
    reduced = _Reduced.of(con, plan, dates, name)
    try:
        parts = max(1, -(-reduced.rows // PART_ROWS))
        for i in range(parts):
            con.register(name + "_arrow", usage_table(con, plan, dates, reduced, parts, i))
            try:
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_arrow" if i == 0
                            else f"INSERT INTO {name} SELECT * FROM {name}_arrow")
            finally:
                con.unregister(name + "_arrow")
    finally:
        reduced.drop(con)
    return GridUsage(name, plan)


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
    code (its rank among the accounts of ``subscriptions``, the snapshots' only accounts):
    ``daily`` per (account, day) the quantities (``_volumes_sql``), ``users`` per (account,
    user, interval between probes) the last active day (``_last_days_sql``), and ``others``
    the same per (account, undeclared type), None when the volumes show no such events."""

    accounts: str
    daily: str
    users: str
    others: str | None
    rows: int  # of the largest of them: what a part of the accounts holds in Python

    @classmethod
    def of(cls, con: duckdb.DuckDBPyConnection, plan: UsageWindows, dates: list[date],
           name: str) -> _Reduced:
        first, last = dates[0], dates[-1]
        origin = _origin(dates, plan)
        accounts, daily = name + "_accounts", name + "_daily"
        users, others = name + "_users", name + "_others"
        made: list[str] = []

        def create(table: str, reduction: str, cursor: duckdb.DuckDBPyConnection) -> None:
            cursor.execute(f"CREATE TABLE {table} AS SELECT c.code, r.* EXCLUDE ({ACCOUNT_ID}) "
                           f"FROM ({reduction}) r JOIN {accounts} c USING ({ACCOUNT_ID})")
            made.append(table)

        try:
            con.execute(f"""CREATE TABLE {accounts} AS SELECT {ACCOUNT_ID},
  CAST(ROW_NUMBER() OVER (ORDER BY {ACCOUNT_ID}) - 1 AS BIGINT) AS code
FROM (SELECT DISTINCT {ACCOUNT_ID} FROM subscriptions WHERE {ACCOUNT_ID} IS NOT NULL)""")
            made.append(accounts)
            _, probes = _probes(dates, origin)
            since = first - timedelta(days=max(max(USER_WINDOWS), 2 * CHANGE_WINDOW))
            _at_once(con, [
                (daily, _volumes_sql(plan, first - timedelta(days=plan.lookback), last, origin)),
                (users, _last_days_sql("user_id", since, last, "", origin, probes)),
            ], create)
            declared = " + ".join(f"q{i}" for i in range(len(plan.event_types))) or "0"
            undeclared = con.execute(f"SELECT COUNT(*) FROM {daily} WHERE q > {declared}"
                                     ).fetchall()[0][0] > 0
            if undeclared:  # events of undeclared (or NULL) types: count the types
                create(others, _last_days_sql(
                    "event_type", first - timedelta(days=max(BREADTH_WINDOWS)), last,
                    "AND e.event_type NOT IN ("
                    + ", ".join(sql_text(t) for t in plan.event_types) + ")", origin, probes),
                    con)
            rows = max(con.execute(f"SELECT COUNT(*) FROM {t}").fetchall()[0][0] for t in made)
        except BaseException:
            for table in made:
                con.execute(f"DROP TABLE IF EXISTS {table}")
            raise
        return cls(accounts, daily, users, others if undeclared else None, rows)

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        for table in (self.accounts, self.daily, self.users, self.others):
            if table is not None:
                con.execute(f"DROP TABLE IF EXISTS {table}")


def _at_once(con: duckdb.DuckDBPyConnection, tables: list[tuple[str, str]], create) -> None:
    """``create(table, query, cursor)`` for every table at once, one single-threaded cursor each
    (as ``build._snapshots`` does): two reductions side by side cost 5.0 CPU-s at 30,000
    accounts x 24 months against 6.4 one after the other with two threads each. (One after
    the other on ``con`` where its cursors do not see the events.)"""
    from concurrent.futures import ThreadPoolExecutor

    if not _cursors_see_events(con):
        for table, query in tables:
            create(table, query, con)
        return
    previous = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    con.execute("SET threads = 1")
    try:
        with ThreadPoolExecutor(len(tables), thread_name_prefix="usage-reduction") as pool:
            futures = [pool.submit(_on_cursor, con, create, table, query)
                       for table, query in tables]
            for future in futures:
                future.result()
    finally:
        con.execute(f"SET threads = {int(previous)}")


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


def _on_cursor(con: duckdb.DuckDBPyConnection, create, table: str, query: str) -> None:
    cursor = con.cursor()
    try:
        create(table, query, cursor)
    finally:
        cursor.close()


def usage_table(con: duckdb.DuckDBPyConnection, plan: UsageWindows, dates: list[date],
                reduced: _Reduced, parts: int = 1, part: int = 0) -> pa.Table:
    """(account_id, as_of, q_<w>d, events_<type>_<w>d, days_since_last_event, other_types_<w>d,
    active_users_<w>d, active_users_change_30d) of every date (sorted) for the accounts whose
    code is ``part`` modulo ``parts``, as Arrow.

    Every value is read at the grid's (account, date) probes: window sums as differences of
    prefix sums over the account's daily rows (one binary search per window length, shared by
    the columns), distinct counts by ``_covering``."""
    import numpy as np
    import pyarrow as pa

    def rows(table: str, columns: str) -> pa.Table:
        return con.sql(f"SELECT code // {parts} AS a, {columns} FROM {table} "
                       f"WHERE code % {parts} = {part}").to_arrow_table()

    unique_accounts = con.sql(f"SELECT {ACCOUNT_ID} FROM {reduced.accounts} WHERE code % {parts}"
                              f" = {part} ORDER BY code").to_arrow_table().column(0)
    n = len(unique_accounts)
    origin = _origin(dates, plan)
    grid, probes = _probes(dates, origin)
    columns, seen = _window_sums(rows(reduced.daily, "* EXCLUDE (code)"), plan, grid, n)

    def last_days(table: str | None) -> _LastDays:
        if table is None:
            return _LastDays.none()
        return _LastDays.of(rows(table, "entity, probe, last"))

    at_date = np.searchsorted(probes, grid)
    others = last_days(reduced.others)
    for w in BREADTH_WINDOWS:
        columns[f"other_types_{w}d"] = _covering(others, w, n, probes)[:, at_date].ravel()
    del others
    users = last_days(reduced.users)
    for w in USER_WINDOWS:
        columns[f"active_users_{w}d"] = _covering(users, w, n, probes)[:, at_date].ravel()
    before_30 = _covering(users, CHANGE_WINDOW, n, probes)[
        :, np.searchsorted(probes, grid - CHANGE_WINDOW)].ravel()
    columns["active_users_change_30d"] = columns[f"active_users_{CHANGE_WINDOW}d"] - before_30
    del users

    probe_account = np.repeat(np.arange(n, dtype=np.int64), len(grid))
    return pa.table({
        ACCOUNT_ID: unique_accounts.take(pa.array(probe_account[seen])),
        AS_OF: pa.array(dates, pa.date32()).take(
        pa.array(np.tile(np.arange(len(dates)), n)[seen])),
        **{name: pa.array(values[seen]) for name, values in columns.items()},
    })


def _window_sums(volumes: pa.Table, plan: UsageWindows, grid: np.ndarray, n: int
                 ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The windowed sums and days since the last event at every (account, date) probe of the
    ``n`` accounts x ``grid`` days (row-major) from the daily rows, and which probes the per-date
    query has a row for (events in the lookback)."""
    import numpy as np

    day = volumes.column("day").to_numpy().astype(np.int64)
    keys = (volumes.column("a").to_numpy().astype(np.int64) << _DAY_BITS) + day
    order = np.argsort(keys)  # (account, day) is unique
    keys, day = keys[order], day[order]

    def column(name: str) -> np.ndarray:
        return volumes.column(name).to_numpy()[order]

    probe_day = np.tile(grid, n)
    base = np.repeat(np.arange(n, dtype=np.int64) << _DAY_BITS, len(grid))
    bounds: dict[int, np.ndarray] = {}

    def before(offset: int) -> np.ndarray:
        """Index of the first daily row on or after (account, T - offset), per probe."""
        if offset not in bounds:
            bounds[offset] = np.searchsorted(keys, base + probe_day - offset, side="left")
        return bounds[offset]

    def window_sum(values: np.ndarray, w: int) -> np.ndarray:
        prefix = np.concatenate(([0], np.cumsum(values, dtype=np.int64)))
        return prefix[before(0)] - prefix[before(w)]

    total = column("q")
    seen = window_sum(total, plan.lookback) > 0  # the per-date query's rows
    columns: dict[str, np.ndarray] = {}
    for w in sorted(set(plan.counts) | {30, 90}):
        columns[f"q_{w}d"] = window_sum(total, w)
    for i, t in enumerate(plan.event_types):
        by_type = column(f"q{i}")
        for w in plan.types:
            columns[f"events_{type_key(t)}_{w}d"] = window_sum(by_type, w)
    last_day = day[np.maximum(before(0) - 1, 0)] if len(day) else np.zeros_like(probe_day)
    columns["days_since_last_event"] = probe_day - last_day
    return columns, seen


def _volumes_sql(plan: UsageWindows, since: date, until: date, origin: date) -> str:
    """Per (account, day): the quantity of events, in total and per declared type.
    (BIGINT sums: a HUGEINT would reach numpy as Python objects; a sum past 2^63 fails.)"""
    by_type = ", ".join(
        f"CAST(SUM(CASE WHEN e.event_type = {sql_text(t)} THEN e.quantity ELSE 0 END) AS BIGINT)"
        f" AS q{i}"
        for i, t in enumerate(plan.event_types)
    )
    return _in_chunks(since, until, [], lambda a, b: f"""
SELECT e.{ACCOUNT_ID}, {_day_number("e.event_time", origin)} AS day,
  CAST(SUM(e.quantity) AS BIGINT) AS q
  {", " + by_type if by_type else ""}
FROM usage_events e WHERE {_span(a, b)}
GROUP BY ALL""")


def _last_days_sql(entity: str, since: date, until: date, where: str, origin: date,
                   probes: np.ndarray) -> str:
    """Per (account, entity, probe): the last day the entity was active before that probe day
    and on or after the one before it ('probe' = the number of probe days at or before the
    day, looked up in a list). Enough for every distinct count: the last active day before a
    probe is that of the entity's latest row at or before it. Monthly dates make few and long
    intervals; at most one row per distinct (account, entity, day) whatever the dates."""
    import numpy as np

    day = _day_number("e.event_time", origin)
    upto = (until - origin).days
    lookup = ", ".join(map(str, np.searchsorted(probes, np.arange(upto), side="right").tolist()))
    cuts = [origin + timedelta(days=int(p)) for p in probes]
    return _in_chunks(since, until, cuts, lambda a, b: f"""
SELECT e.{ACCOUNT_ID}, e.{entity} AS entity,
  CAST([{lookup}][{day} + 1] AS INTEGER) AS probe, MAX({day}) AS last
FROM usage_events e WHERE {_span(a, b)} {where}
GROUP BY ALL""")


def _in_chunks(since: date, until: date, cuts: list[date], reduction) -> str:
    """``reduction(a, b)`` of consecutive spans of about ``CHUNK_DAYS`` covering [since,
    until), in one query (UNION ALL). Their groups are disjoint when no group spans a cut: a
    day for the daily rows (``cuts`` empty: any day), a probe day for the last days. Each
    span's hash table is that much smaller: 5.4 -> ?? CPU-s for both reductions at 30,000
    accounts x 24 months, ?? -> ?? at 100,000."""
    bounds = [since]
    for cut in cuts or [since + timedelta(days=CHUNK_DAYS * i) for i in range(
            1, (until - since).days // CHUNK_DAYS + 1)]:
        if cut - bounds[-1] >= timedelta(days=CHUNK_DAYS) and cut < until:
            bounds.append(cut)
    bounds.append(until)
    spans = zip(bounds, bounds[1:], strict=False)
    return "\nUNION ALL\n".join(f"({reduction(a, b)})" for a, b in spans)


@dataclass(frozen=True)
class _LastDays:
    """``_last_days_sql``'s rows of a part sorted by (account, entity, probe)."""

    account: np.ndarray  # the account's index in the part
    probe: np.ndarray
    last: np.ndarray
    next_probe: np.ndarray  # the probe of the entity's next row; past every probe if none

    @classmethod
    def of(cls, rows: pa.Table) -> _LastDays:
        import numpy as np
        import pyarrow.compute as pc

        entity = pc.dictionary_encode(rows.column("entity").combine_chunks()).indices
        entity = np.asarray(pc.fill_null(entity, -1).to_numpy(zero_copy_only=False)) + 1
        account = rows.column("a").to_numpy().astype(np.int64)
        probe = rows.column("probe").to_numpy().astype(np.int64)
        last = rows.column("last").to_numpy().astype(np.int64)
        order = _sort_order(account, entity, probe)
        account, entity, probe, last = account[order], entity[order], probe[order], last[order]
        next_probe = np.full(len(probe), np.iinfo(np.int32).max, dtype=np.int64)
        same = (account[1:] == account[:-1]) & (entity[1:] == entity[:-1])
        next_probe[:-1] = np.where(same, probe[1:], next_probe[:-1])
        return cls(account, probe, last, next_probe)

    @classmethod
    def none(cls) -> _LastDays:
        import numpy as np

        empty = np.zeros(0, dtype=np.int64)
        return cls(empty, empty, empty, empty)


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
    stop = np.minimum(active.next_probe, np.searchsorted(probes, active.last + w, side="right"))
    keep = active.probe < stop
    size = accounts * width
    change = (np.bincount(active.account[keep] * width + active.probe[keep], minlength=size)
              .astype(np.int64)
              - np.bincount(active.account[keep] * width + stop[keep], minlength=size))
    return np.cumsum(change.reshape(accounts, width), axis=1)[:, :-1]
