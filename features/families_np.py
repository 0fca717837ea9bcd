"""Whole-grid forms in numpy of the families that only count rows in day windows.

A grid's snapshots compute each family once per date; for ``activities`` and ``contacts`` every
comparison with a boundary is one of whole days (a boundary is a midnight, so ``t >= T - w``
is ``day(t) >= day(T) - w``), and every feature is a count, a presence flag or a difference of
days. So their values for every (date, account) come from each row's day number with sorted
arrays and ``bincount``, with no hash aggregation of string keys per date. The single-date SQL
stays the reference: ``tests/features/test_families_np.py`` and the grid tests compare every
date.

Every feature here is filled (0) where the account has no row, except ``days_since_last_qbr``,
which is null exactly where no QBR is known; so a row is given for every account with any
source row, whether or not the SQL would have one, and the snapshot's values are the same.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

from features.catalogue import ACCOUNT_ID, FeatureGroup, exact

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pyarrow as pa

EPOCH = date(1970, 1, 1)
NO_DAY = 2**38  # a null date: after every boundary
_SPAN = 2**40  # an account's range of keys (account code x _SPAN + day + _SPAN // 2)
DAY = "_grid_day"  # the date's index among the dates asked for (as in ``grid_assembly``)


def has_form(group: FeatureGroup) -> bool:
    return group.name in FORMS


def rows(con: duckdb.DuckDBPyConnection, group: FeatureGroup, dates: list[date],
         cache: dict) -> pa.Table:
    """The family's rows for each date (``DAY``: its index in ``dates``), an account per row
    with its declared columns; the source is read once per ``cache``."""
    if group.name not in cache:
        cache[group.name] = LOADERS[group.name](con)
    return FORMS[group.name](cache[group.name], group, dates)


def _day(d: date) -> int:
    return (d - EPOCH).days


class _Source:
    """A source table's rows as account codes (into ``accounts``) and named numpy columns."""

    def __init__(self, table: pa.Table):
        import numpy as np
        import pyarrow.compute as pc

        encoded = pc.dictionary_encode(table[ACCOUNT_ID].combine_chunks())
        self.accounts: pa.Array = encoded.dictionary
        self.code = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        self.columns = {name: table[name] for name in table.column_names if name != ACCOUNT_ID}

    def days(self, name: str) -> np.ndarray:
        import numpy as np
        import pyarrow.compute as pc

        return pc.fill_null(self.columns[name], NO_DAY).to_numpy().astype(np.int64)

    def equals(self, name: str, value: str) -> np.ndarray:
        import pyarrow.compute as pc

        return pc.fill_null(pc.equal(self.columns[name], value), False).to_numpy(
            zero_copy_only=False)


def _table(source: _Source, group: FeatureGroup, values: dict[str, np.ndarray],
           dates: list[date]) -> pa.Table:
    """One row per (date, account of the source), from (dates x accounts) arrays; a value
    array may be a masked array (masked: null)."""
    import numpy as np
    import pyarrow as pa

    n = len(source.accounts)
    columns = {DAY: pa.array(np.repeat(np.arange(len(dates), dtype=np.int32), n)),
               ACCOUNT_ID: source.accounts.take(pa.array(np.tile(np.arange(n), len(dates))))}
    for name in group.names:
        value = values[name]
        mask = np.ma.getmaskarray(value).ravel() if np.ma.isMaskedArray(value) else None
        data = np.ma.getdata(value).ravel()
        columns[name] = pa.array(data if data.dtype.kind == "f" else data.astype(np.int64),
                                 mask=mask)
    return pa.table(columns)


def _counts(code: np.ndarray, where: np.ndarray, accounts: int) -> np.ndarray:
    import numpy as np

    return np.bincount(code[where], minlength=accounts)


def _sums(code: np.ndarray, values: np.ndarray, accounts: int) -> np.ndarray:
    """Exact integer sums per account: ``bincount`` adds in doubles, exact while every partial
    sum stays below 2**53 (bounded here by the sum of absolute values); else one by one."""
    import numpy as np

    if not len(values) or int(np.abs(values).sum(dtype=np.float64)) < 2**52:
        return np.bincount(code, values, minlength=accounts).astype(np.int64)
    total = np.zeros(accounts, np.int64)
    np.add.at(total, code, values)
    return total


# activities ---------------------------------------------------------------------------------

def _load_activities(con: duckdb.DuckDBPyConnection) -> _Source:
    return _Source(con.sql(
        "SELECT account_id, CAST(CAST(occurred_at AS DATE) - DATE '1970-01-01' AS BIGINT) AS day,"
        " type FROM activities WHERE account_id IS NOT NULL AND occurred_at IS NOT NULL"
    ).to_arrow_table())


def _activities(source: _Source, group: FeatureGroup, dates: list[date]) -> pa.Table:
    """``relationships.activities_group``'s values: touches and onboarding sessions in their
    windows, QBRs in 180 days and the days since the last one, per (date, account)."""
    import numpy as np

    n = len(source.accounts)
    day = source.days("day")
    order = np.argsort(day, kind="stable")
    day, code = day[order], source.code[order]
    qbr = source.equals("type", "qbr")[order]
    onboarding = source.equals("type", "onboarding session")[order]
    windows = [int(name[len("touches_"):-1]) for name in group.names
               if name.startswith("touches_")]
    # the last QBR before each date: QBR rows by (account, day), one binary search per account
    qbr_key = code[qbr] * _SPAN + day[qbr] + _SPAN // 2
    qbr_key.sort()
    starts = np.arange(n, dtype=np.int64) * _SPAN
    values: dict[str, list] = {name: [] for name in group.names}
    for as_of in dates:
        t = _day(as_of)

        def since(w: int) -> slice:
            return slice(np.searchsorted(day, t - w), np.searchsorted(day, t))

        last = np.searchsorted(qbr_key, starts + t + _SPAN // 2) - 1
        found = (last >= 0) & (qbr_key[np.maximum(last, 0)] >= starts) if len(qbr_key) else \
            np.zeros(n, bool)
        last_day = (qbr_key[np.maximum(last, 0)] - starts - _SPAN // 2) if len(qbr_key) else \
            np.zeros(n, np.int64)
        values["days_since_last_qbr"].append(np.ma.masked_array(t - last_day, ~found))
        w180 = since(180)
        values["qbrs_180d"].append(_counts(code[w180], qbr[w180], n))
        for w in windows:
            window = since(w)
            values[f"touches_{w}d"].append(np.bincount(code[window], minlength=n))
        w90 = since(90)
        values["onboarding_sessions_90d"].append(_counts(code[w90], onboarding[w90], n))
    return _table(source, group, {k: np.ma.vstack(v) if k == "days_since_last_qbr"
                                  else np.vstack(v) for k, v in values.items()}, dates)


# contacts -----------------------------------------------------------------------------------

def _load_contacts(con: duckdb.DuckDBPyConnection) -> _Source:
    return _Source(con.sql(
        "SELECT account_id, role, CAST(start_date - DATE '1970-01-01' AS BIGINT) AS start_day, "
        "CAST(end_date - DATE '1970-01-01' AS BIGINT) AS end_day FROM contacts "
        "WHERE account_id IS NOT NULL AND start_date IS NOT NULL"
    ).to_arrow_table())


def _contacts(source: _Source, group: FeatureGroup, dates: list[date]) -> pa.Table:
    """``relationships.contacts_group``'s values: contacts in their role by role, champions
    who left in the last 90 days, per (date, account). A contact is known from its start
    date and in its role until its end date, that day included."""
    import numpy as np

    n = len(source.accounts)
    start, end, code = source.days("start_day"), source.days("end_day"), source.code
    role = {r: source.equals("role", r)
            for r in ("champion", "executive sponsor", "economic buyer", "detractor")}
    values: dict[str, list] = {name: [] for name in group.names}
    for as_of in dates:
        t = _day(as_of)
        known = start < t
        in_role = known & (end >= t)  # a null end (NO_DAY) is after every date

        def count(where: np.ndarray) -> np.ndarray:
            return _counts(code, where, n)

        values["champions"].append(count(in_role & role["champion"]))
        values["champion_departed_90d"].append(
            count(known & role["champion"] & (end >= t - 90) & (end < t)))
        values["executive_sponsor_present"].append(
            (count(in_role & role["executive sponsor"]) > 0).astype(np.int64))
        values["economic_buyer_present"].append(
            (count(in_role & role["economic buyer"]) > 0).astype(np.int64))
        values["detractor_contacts"].append(count(in_role & role["detractor"]))
        values["contacts_in_role"].append(count(in_role))
    return _table(source, group, {k: np.vstack(v) for k, v in values.items()}, dates)


# support -------------------------------------------------------------------------------------

def _load_support(con: duckdb.DuckDBPyConnection) -> _Source:
    """Tickets with their days, the seconds to resolve and CSAT in millionths computed by
    DuckDB as the family's SQL computes them (``date_diff``, DECIMAL(38, 6))."""
    def day(column: str) -> str:
        return f"CAST(CAST({column} AS DATE) - DATE '1970-01-01' AS BIGINT)"

    return _Source(con.sql(
        f"SELECT account_id, {day('opened_at')} AS opened_day, {day('closed_at')} AS closed_day, "
        "date_diff('second', opened_at, closed_at) AS seconds, "
        f"CAST({exact('csat')} * 1000000 AS BIGINT) AS csat_micro, "
        "COALESCE(escalated, false) AS escalated, "
        "COALESCE(priority IN ('high', 'urgent'), false) AS urgent "
        "FROM support_tickets WHERE account_id IS NOT NULL AND opened_at IS NOT NULL"
    ).to_arrow_table())


def _support(source: _Source, group: FeatureGroup, dates: list[date]) -> pa.Table:
    """``support.group``'s values per (date, account): tickets opened in each window, escalated
    and urgent ones, those still open, and the averages of the tickets closed in 90 days (hours
    to resolve) and 180 days (CSAT) as DuckDB's AVG gives them (an integer sum over the count
    in doubles; a DECIMAL sum as a double over the count)."""
    import numpy as np
    import pyarrow.compute as pc

    n = len(source.accounts)
    opened, closed, code = source.days("opened_day"), source.days("closed_day"), source.code
    seconds = pc.fill_null(source.columns["seconds"], 0).to_numpy().astype(np.int64)
    has_seconds = pc.is_valid(source.columns["seconds"]).to_numpy(zero_copy_only=False)
    csat = pc.fill_null(source.columns["csat_micro"], 0).to_numpy().astype(np.int64)
    has_csat = pc.is_valid(source.columns["csat_micro"]).to_numpy(zero_copy_only=False)
    escalated = source.columns["escalated"].to_numpy(zero_copy_only=False)
    urgent = source.columns["urgent"].to_numpy(zero_copy_only=False)
    windows = [int(name[len("tickets_"):-1]) for name in group.names
               if name.startswith("tickets_")]
    values: dict[str, list] = {name: [] for name in group.names}
    for as_of in dates:
        t = _day(as_of)
        known = opened < t

        def count(where: np.ndarray) -> np.ndarray:
            return _counts(code, where, n)

        for w in windows:
            recent = known & (opened >= t - w)
            values[f"tickets_{w}d"].append(count(recent))
            values[f"escalations_{w}d"].append(count(recent & escalated))
        values["urgent_tickets_90d"].append(count(known & (opened >= t - 90) & urgent))
        values["open_tickets"].append(count(known & (closed >= t)))  # a null closing: NO_DAY
        resolved = known & (closed >= t - 90) & (closed < t) & has_seconds
        many = count(resolved)
        values["hours_to_resolve_90d"].append(np.ma.masked_array(
            _sums(code[resolved], seconds[resolved], n) / np.maximum(many, 1) / 3600.0,
            many == 0))
        rated = known & (closed >= t - 180) & (closed < t) & has_csat
        raters = count(rated)
        values["csat_180d"].append(np.ma.masked_array(
            _sums(code[rated], csat[rated], n) / 1e6 / np.maximum(raters, 1), raters == 0))
    return _table(source, group, {k: np.ma.vstack(v) if k in ("hours_to_resolve_90d", "csat_180d")
                                  else np.vstack(v) for k, v in values.items()}, dates)


LOADERS: dict[str, Callable[[duckdb.DuckDBPyConnection], _Source]] = {
    "activities": _load_activities, "contacts": _load_contacts, "support": _load_support}
FORMS: dict[str, Callable[[_Source, FeatureGroup, list[date]], pa.Table]] = {
    "activities": _activities, "contacts": _contacts, "support": _support}
