"""The usage family for every date of a grid in one pass over the events.

Per date, the usage query reduces the events of its last 180 days again, so a grid pays about
one scan and one aggregation of the events per date. Here DuckDB reduces the events once per
(account, day) (per-type quantities) and once per (account, user) into bitmaps of the active
days, 64 days a row (and per (account, undeclared type) when the volumes show such events):
hash groups a tenth of the distinct (account, user, day), which fit the caches. Every window
of every date then comes from prefix sums over the daily rows (numpy: a window's sum is
C(T) - C(T - w)), and distinct users from runs of the activity days unpacked from the bitmaps:
a user with activity on day d counts in the window of every date T with d < T <= d + w, so
each run of days whose gaps are at most w covers one interval of dates and the count at T is
runs started before T minus runs ended before T.

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
#: Daily rows per part of the accounts: about 1.5 GB at most in Python (measured 2.97 GB peak
#: for 100,000 accounts x 24 months in 2 parts of 25 M, 5.5 GB in one part of 50 M).
PART_ROWS = 16_000_000
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

    The accounts are taken in parts (by a hash of the account) of at most about ``PART_ROWS``
    daily rows, so that the rows held in Python stay bounded whatever the size of the book: a
    part's daily rows are at most its events and at most its accounts times the days read.
    """
    dates = sorted(set(dates))
    since = dates[0] - timedelta(days=plan.lookback)
    events = con.execute(f"SELECT COUNT(*) FROM usage_events e WHERE {_span(since, dates[-1])}"
                         ).fetchall()[0][0]
    accounts = con.execute("SELECT COUNT(*) FROM accounts").fetchall()[0][0]
    daily_rows = min(events, max(accounts, 1) * (dates[-1] - since).days)
    parts = max(1, -(-daily_rows // PART_ROWS))
    name = f"_grid_usage_{uuid.uuid4().hex[:12]}"
    for i in range(parts):
        part = f"AND hash(e.{ACCOUNT_ID}) % {parts} = {i}" if parts > 1 else ""
        con.register(name + "_arrow", usage_table(con, plan, dates, part))
        try:
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_arrow" if i == 0
                        else f"INSERT INTO {name} SELECT * FROM {name}_arrow")
        finally:
            con.unregister(name + "_arrow")
    return GridUsage(name, plan)


def _span(since: date, until: date) -> str:
    """The events of [since, until) that are activity (quantity 0 stands for no event)."""
    return (f"e.event_time >= {_ts(since)} AND e.event_time < {_ts(until)} AND e.quantity > 0 "
            f"AND e.{ACCOUNT_ID} IS NOT NULL")


def usage_table(con: duckdb.DuckDBPyConnection, plan: UsageWindows, dates: list[date],
                part: str = "") -> pa.Table:
    """(account_id, as_of, q_<w>d, events_<type>_<w>d, days_since_last_event, other_types_<w>d,
    active_users_<w>d, active_users_change_30d) of every date (sorted) for the accounts of
    ``part`` (a condition on the events ``e``), as Arrow."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    first, last = dates[0], dates[-1]
    origin = _origin(dates, plan)
    volumes = _volumes(con, plan, first - timedelta(days=plan.lookback), last, part, origin)
    accounts = volumes.column(ACCOUNT_ID).combine_chunks()
    unique_accounts = pc.unique(accounts)
    unique_accounts = unique_accounts.take(pc.sort_indices(unique_accounts))
    account_code = _codes(accounts, unique_accounts)
    day = volumes.column("day").to_numpy().astype(np.int64)
    keys = (account_code << _DAY_BITS) + day
    order = np.argsort(keys, kind="stable")
    keys, day = keys[order], day[order]

    def column(name: str) -> np.ndarray:
        return volumes.column(name).to_numpy()[order]

    grid = np.array([(d - origin).days for d in dates], dtype=np.int64)
    probe_account = np.repeat(np.arange(len(unique_accounts), dtype=np.int64), len(grid))
    probe_day = np.tile(grid, len(unique_accounts))
    base = probe_account << _DAY_BITS

    def before(k: np.ndarray, offset: int) -> np.ndarray:
        """Index of the first row of ``k`` on or after (account, T - offset)."""
        return np.searchsorted(k, base + probe_day - offset, side="left")

    at_date = before(keys, 0)

    def window_sum(values: np.ndarray, w: int) -> np.ndarray:
        prefix = np.concatenate(([0], np.cumsum(values, dtype=np.int64)))
        return prefix[at_date] - prefix[before(keys, w)]

    total = column("q")
    seen = window_sum(total, plan.lookback) > 0  # the per-date query's rows
    columns: dict[str, np.ndarray] = {}
    for w in sorted(set(plan.counts) | {30, 90}):
        columns[f"q_{w}d"] = window_sum(total, w)
    declared = np.zeros(len(total), dtype=np.int64)
    for i, t in enumerate(plan.event_types):
        by_type = column(f"q{i}")
        declared += by_type
        for w in plan.types:
            columns[f"events_{type_key(t)}_{w}d"] = window_sum(by_type, w)
    last_day = day[np.maximum(at_date - 1, 0)]
    columns["days_since_last_event"] = probe_day - last_day

    if (total > declared).any():  # events of undeclared (or NULL) types: count the types
        others = _active_days(con, "event_type", first - timedelta(days=max(BREADTH_WINDOWS)),
                              last, "AND e.event_type NOT IN ("
                              + ", ".join(sql_text(t) for t in plan.event_types) + ") " + part,
                              unique_accounts, origin)
    else:
        others = _ActiveDays.none()
    for w in BREADTH_WINDOWS:
        columns[f"other_types_{w}d"] = _covering(others, w, base, probe_day)
    users = _active_days(con, "user_id", first - timedelta(
        days=max(max(USER_WINDOWS), 2 * CHANGE_WINDOW)), last, part, unique_accounts, origin)
    for w in USER_WINDOWS:
        columns[f"active_users_{w}d"] = _covering(users, w, base, probe_day)
    columns["active_users_change_30d"] = columns[f"active_users_{CHANGE_WINDOW}d"] - _covering(
        users, CHANGE_WINDOW, base, probe_day - CHANGE_WINDOW)

    return pa.table({
        ACCOUNT_ID: unique_accounts.take(pa.array(probe_account[seen])),
        AS_OF: pa.array(dates, pa.date32()).take(
        pa.array(np.tile(np.arange(len(dates)), len(unique_accounts))[seen])),
        **{name: pa.array(values[seen]) for name, values in columns.items()},
    })


def _volumes(con, plan: UsageWindows, since: date, until: date, part: str, origin: date
             ) -> pa.Table:
    """Per (account, day): the quantity of events, in total and per declared type.
    (BIGINT sums: a HUGEINT would reach numpy as Python objects; a sum past 2^63 fails.)"""
    by_type = ", ".join(
        f"CAST(SUM(CASE WHEN e.event_type = {sql_text(t)} THEN e.quantity ELSE 0 END) AS BIGINT)"
        f" AS q{i}"
        for i, t in enumerate(plan.event_types)
    )
    return con.sql(f"""
SELECT e.{ACCOUNT_ID}, {_day_number("e.event_time", origin)} AS day,
  CAST(SUM(e.quantity) AS BIGINT) AS q
  {", " + by_type if by_type else ""}
FROM usage_events e WHERE {_span(since, until)} {part}
GROUP BY ALL""").to_arrow_table()


_WORD = 64  # days per bitmap word of the active days


@dataclass(frozen=True)
class _ActiveDays:
    """Distinct (account, entity, day) rows sorted so; the entity is a user or an event type."""

    account: np.ndarray  # the account's index in the grid's sorted accounts
    pair: np.ndarray  # a code per distinct (account, entity), increasing with the sort
    day: np.ndarray

    @classmethod
    def none(cls) -> _ActiveDays:
        import numpy as np

        empty = np.zeros(0, dtype=np.int64)
        return cls(empty, empty, empty)


def _active_days(con, entity: str, since: date, until: date, where: str,
                 unique_accounts: pa.Array, origin: date) -> _ActiveDays:
    """The active days of each (account, entity). DuckDB reduces the events to one bitmap of
    64 days per (account, entity, 64 days), a tenth or less of the rows of the distinct
    (account, entity, day) (hash groups that fit the caches: 1.5 CPU-s instead of 2.2 for 18 M
    events), and numpy unpacks the bits in order."""
    import numpy as np
    import pyarrow.compute as pc

    day = _day_number("e.event_time", origin)
    rows = con.sql(f"""
SELECT e.{ACCOUNT_ID}, e.{entity} AS entity, {day} // {_WORD} AS word,
  BIT_OR(CAST(1 AS UBIGINT) << CAST({day} % {_WORD} AS UBIGINT)) AS bits
FROM usage_events e WHERE {_span(since, until)} {where}
GROUP BY ALL""").to_arrow_table()
    account = _codes(rows.column(ACCOUNT_ID).combine_chunks(), unique_accounts)
    codes = pc.dictionary_encode(rows.column("entity").combine_chunks()).indices
    entity = np.asarray(pc.fill_null(codes, -1).to_numpy(zero_copy_only=False)) + 1
    word = rows.column("word").to_numpy().astype(np.int64)
    bits = rows.column("bits").to_numpy()
    known = account >= 0  # accounts without volume rows have no probe
    account, entity, word, bits = account[known], entity[known], word[known], bits[known]
    order = np.lexsort((word, entity, account))
    account, entity, word, bits = account[order], entity[order], word[order], bits[order]
    new_pair = np.ones(len(account), dtype=bool)
    new_pair[1:] = (account[1:] != account[:-1]) | (entity[1:] != entity[:-1])
    pair = np.cumsum(new_pair) - 1
    row, bit = _set_bits(bits)
    return _ActiveDays(account[row], pair[row], word[row] * _WORD + bit)


def _set_bits(words: np.ndarray, block: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """(row, bit) of every set bit of the uint64 ``words``, in row then bit order (in blocks
    of rows: the unpacked bits take 64 bytes a row)."""
    import numpy as np

    rows, bits = [], []
    for first in range(0, len(words), block):
        chunk = np.ascontiguousarray(words[first:first + block], dtype="<u8")
        flags = np.unpackbits(chunk.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
        row, bit = np.nonzero(flags)
        rows.append(row + first)
        bits.append(bit)
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(rows).astype(np.int64), np.concatenate(bits).astype(np.int64)


def _covering(active: _ActiveDays, w: int, base: np.ndarray, probe_day: np.ndarray
              ) -> np.ndarray:
    """Per probe (account, X): entities with an active day in [X - w, X)."""
    import numpy as np

    pair = active.pair
    same = np.zeros(len(pair), dtype=bool)  # row continues the previous row's entity
    same[1:] = pair[1:] == pair[:-1]
    gap_before = np.full(len(pair), np.iinfo(np.int64).max)
    gap_before[1:] = np.where(same[1:], active.day[1:] - active.day[:-1], gap_before[1:])
    run_starts = gap_before > w
    run_ends = np.ones(len(pair), dtype=bool)
    run_ends[:-1] = run_starts[1:]
    key = active.account << _DAY_BITS
    starts = np.sort((key + active.day)[run_starts])
    ends = np.sort((key + active.day + w)[run_ends])
    at = base + probe_day
    return (np.searchsorted(starts, at) - np.searchsorted(starts, base)
            - (np.searchsorted(ends, at) - np.searchsorted(ends, base)))


def _codes(values: pa.Array, sorted_unique: pa.Array) -> np.ndarray:
    """Each value's index in ``sorted_unique`` (-1 where absent), as int64."""
    import numpy as np
    import pyarrow.compute as pc

    found = pc.fill_null(pc.index_in(values, value_set=sorted_unique), -1)
    return np.asarray(found.to_numpy(zero_copy_only=False)).astype(np.int64)
