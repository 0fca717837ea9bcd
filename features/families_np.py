"""Whole-grid forms in numpy of the families that count rows, sum money or average in day windows.

A grid's snapshots compute each family once per date; for ``activities``, ``contacts``,
``hierarchy``, ``support``, ``revenue`` (``features.revenue_np``) and ``voice``
(``features.voice_np``) every comparison with a
boundary is one of whole days (a boundary is a midnight, so ``t >= T - w`` is
``day(t) >= day(T) - w``), and every feature is a count, a presence flag, a difference of days,
an exact DECIMAL sum (held as integer millionths, rounded as DuckDB rounds DECIMALs) or an AVG
(from its exact sum and count, divided as DuckDB divides them: ``features.exact_np``). So their
values for every (date, account) come from each row's day number with sorted arrays and
``bincount``, with no hash aggregation of string keys per date. The single-date SQL stays the
reference: ``tests/features/test_families_np.py``, ``test_revenue_np.py``, ``test_support_np.py``
and the grid tests compare every date. A loader may find its source outside its form's bounds
(a null the contract forbids, sums beyond 64 bits): it gives None and the family stays in SQL.

The activities and contacts features are filled (0) where the account has no row, except
``days_since_last_qbr``, null exactly where no QBR is known; so a row is given for every
account with any source row, whether or not the SQL would have one, and the snapshot's values
are the same. Hierarchy's rows are the accounts known at the date, support's the accounts with
a ticket its query reads, as in their SQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

from features import account_days, exact_np, revenue_np, voice_np
from features.catalogue import ACCOUNT_ID, FeatureGroup, exact
from features.terms import in_force_days

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pyarrow as pa

EPOCH = date(1970, 1, 1)
NO_DAY = 2**38  # a null date: after every boundary
DAY = "_grid_day"  # the date's index among the dates asked for (as in ``grid_assembly``)


def has_form(group: FeatureGroup) -> bool:
    return group.name in FORMS


def applies(con: duckdb.DuckDBPyConnection, group: FeatureGroup, cache: dict) -> bool:
    """The family has a numpy form and its source fits it (read once per ``cache``; a loader
    gives None where its source does not fit, and the family then stays in SQL)."""
    if not has_form(group):
        return False
    if group.name not in cache:
        cache[group.name] = LOADERS[group.name](con)
    return cache[group.name] is not None


def preload(con: duckdb.DuckDBPyConnection, groups: list[FeatureGroup]) -> Callable[[], dict]:
    """Start reading the sources of ``groups``' numpy forms on a cursor of ``con``, in a
    thread (``ahead.on_cursor``); the returned function waits for them and gives the cache
    ``applies`` reads.

    Why: a grid reads these sources before its first chunk, when the usage one pass has just
    ended, with one core busy (~2 s of a 100,000-account grid); read while the usage
    reductions run, they fill that gap instead. A source the cursor cannot read (the raw
    tables registered as frames on ``con``, which its cursors do not see) is left out of the
    cache, and read on ``con`` as before; so is any error, which that read raises again."""
    import duckdb

    from features import ahead

    cache: dict = {}

    def read(cursor: duckdb.DuckDBPyConnection) -> None:
        for group in groups:
            if has_form(group):
                try:
                    applies(cursor, group, cache)
                except duckdb.Error:
                    cache.pop(group.name, None)

    reading = ahead.on_cursor(con, read, "numpy-sources")

    def wait() -> dict:
        reading()  # after a failure, what was read; the rest is read on ``con`` later
        return cache

    return wait


def rows(con: duckdb.DuckDBPyConnection, group: FeatureGroup, dates: list[date],
         cache: dict) -> pa.Table:
    """The family's rows for each date (``DAY``: its index in ``dates``), an account per row
    with its declared columns; the source is read once per ``cache`` (read it with ``applies``
    first where ``con`` is a cursor of the connection the raw tables are registered on)."""
    if not applies(con, group, cache):
        raise ValueError(f"feature group {group.name!r}: its source does not fit its numpy "
                         "form; compute it in SQL")
    source = cache[group.name]
    if isinstance(source, revenue_np.Terms) and source.con is not con:
        source = dataclasses.replace(source, con=con)  # its rare SQL route runs on ``con``
    return FORMS[group.name](source, group, dates)


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


def ids(accounts: pa.Array, codes: np.ndarray) -> pa.Array:
    """The accounts of ``codes`` as a dictionary array of ``accounts``: no string is copied,
    and the grid's alignment looks up each distinct account once (``grid_assembly._keys``)."""
    import numpy as np
    import pyarrow as pa

    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int64, copy=False)),
                                          accounts)


def _table(source: _Source, group: FeatureGroup, values: dict[str, np.ndarray],
           dates: list[date]) -> pa.Table:
    """One row per (date, account of the source), from (dates x accounts) arrays; a value
    array may be a masked array (masked: null)."""
    import numpy as np
    import pyarrow as pa

    n = len(source.accounts)
    columns = {DAY: pa.array(np.repeat(np.arange(len(dates), dtype=np.int32), n)),
               ACCOUNT_ID: ids(source.accounts, np.tile(np.arange(n), len(dates)))}
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

def _load_activities(con: duckdb.DuckDBPyConnection) -> dict:
    """Activities sorted by day (their codes, days, QBR and onboarding flags), and the QBRs'
    keys (account and day) sorted: once per grid, not once per chunk of dates."""
    import numpy as np

    source = _Source(con.sql(
        "SELECT account_id, CAST(CAST(occurred_at AS DATE) - DATE '1970-01-01' AS BIGINT) AS day,"
        " type FROM activities WHERE account_id IS NOT NULL AND occurred_at IS NOT NULL"
    ).to_arrow_table())
    day = source.days("day")
    order = np.argsort(day, kind="stable")
    day, code = day[order], source.code[order]
    qbr = source.equals("type", "qbr")[order]
    qbr_key = account_days.keys(code[qbr], day[qbr])
    qbr_key.sort()
    return {"source": source, "day": day, "code": code, "qbr": qbr, "qbr_key": qbr_key,
            "onboarding": source.equals("type", "onboarding session")[order]}


def _activities(rows: dict, group: FeatureGroup, dates: list[date]) -> pa.Table:
    """``relationships.activities_group``'s values: touches and onboarding sessions in their
    windows, QBRs in 180 days and the days since the last one, per (date, account)."""
    import numpy as np

    source: _Source = rows["source"]
    n = len(source.accounts)
    day, code, qbr, onboarding = rows["day"], rows["code"], rows["qbr"], rows["onboarding"]
    windows = [int(name[len("touches_"):-1]) for name in group.names
               if name.startswith("touches_")]
    # the last QBR before each date: QBR rows by (account, day), one binary search per account
    qbr_key = rows["qbr_key"]
    values: dict[str, list] = {name: [] for name in group.names}
    for as_of in dates:
        t = _day(as_of)

        def since(w: int, t: int = t) -> slice:
            return slice(np.searchsorted(day, t - w), np.searchsorted(day, t))

        last, found = account_days.last_before(qbr_key, n, t)
        last_day = account_days.day_of(qbr_key, last)
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


# hierarchy -----------------------------------------------------------------------------------

def _load_hierarchy(con: duckdb.DuckDBPyConnection) -> dict:
    """Accounts (created day, parent) and subscription terms (in-force days, MRR in
    millionths as DECIMAL(38, 6) holds it), their accounts coded in one dictionary."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    accounts = con.sql(
        "SELECT account_id, parent_account_id, "
        "CAST(CAST(created_at AS DATE) - DATE '1970-01-01' AS BIGINT) AS created_day "
        "FROM accounts WHERE account_id IS NOT NULL AND created_at IS NOT NULL").to_arrow_table()
    terms = con.sql(
        "SELECT account_id, CAST(start_date - DATE '1970-01-01' AS BIGINT) AS start_day, "
        "CAST(end_date - DATE '1970-01-01' AS BIGINT) AS end_day, "
        "CAST(CAST(cancelled_at AS DATE) - DATE '1970-01-01' AS BIGINT) AS cancelled_day, "
        f"CAST({exact('mrr')} * 1000000 AS BIGINT) AS mrr_micro FROM subscriptions "
        "WHERE account_id IS NOT NULL AND start_date IS NOT NULL").to_arrow_table()
    ids = [accounts["account_id"].combine_chunks(),
           accounts["parent_account_id"].combine_chunks(), terms["account_id"].combine_chunks()]
    encoded = pc.dictionary_encode(pa.concat_arrays(ids))
    code = pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64)
    n, m = len(accounts), len(accounts) + len(accounts)

    def days(table: pa.Table, name: str) -> np.ndarray:
        return pc.fill_null(table[name], NO_DAY).to_numpy().astype(np.int64)

    return {"accounts": encoded.dictionary, "code": code[:n], "parent": code[n:m],
            "created": days(accounts, "created_day"), "term_code": code[m:],
            "start": days(terms, "start_day"), "end": terms["end_day"],
            "cancelled": days(terms, "cancelled_day"),
            "mrr": pc.fill_null(terms["mrr_micro"], 0).to_numpy().astype(np.int64)}


def _cents(micro: np.ndarray) -> np.ndarray:
    """DECIMAL(38, 6) millionths rounded to 2 decimals as DuckDB's ROUND does, in hundredths."""
    return exact_np.round_half_away(micro, 4)


def _hierarchy(source: dict, group: FeatureGroup, dates: list[date]) -> pa.Table:
    """``hierarchy.group``'s values per (date, account known then): the ARR in force of the
    parent, of the siblings and of the children, in exact millionths rounded as the SQL does."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    accounts = len(source["accounts"])
    code, parent, created = source["code"], source["parent"], source["created"]
    term_code, start, cancelled, mrr = (source[k] for k in ("term_code", "start", "cancelled",
                                                            "mrr"))
    has_end = pc.is_valid(source["end"]).to_numpy(zero_copy_only=False)
    end = pc.fill_null(source["end"], 0).to_numpy().astype(np.int64)
    parts: dict[str, list] = {name: [] for name in ("_day", "_code", *group.names)}
    for i, as_of in enumerate(dates):
        t = _day(as_of)
        in_force = in_force_days(start, end, has_end, cancelled, t)
        arr = 12 * _sums(term_code[in_force], mrr[in_force], accounts)  # own ARR, millionths
        known = created < t
        k_code, k_parent = code[known], parent[known]
        child = k_parent >= 0
        family_n = np.bincount(k_parent[child], minlength=accounts)
        family_arr = _sums(k_parent[child], arr[k_code[child]], accounts)
        p = np.maximum(k_parent, 0)
        parts["_day"].append(np.full(len(k_code), i))
        parts["_code"].append(k_code)
        parts["has_parent"].append(child.astype(np.int64))
        parts["parent_arr"].append(np.where(child, _cents(arr[p]), 0))
        parts["sibling_arr"].append(np.where(child, _cents(family_arr[p] - arr[k_code]), 0))
        parts["child_accounts"].append(family_n[k_code])
        parts["children_arr"].append(_cents(family_arr[k_code]))
    joined = {k: np.concatenate(v) for k, v in parts.items()}
    with_parent = joined["has_parent"] == 1
    columns = {DAY: pa.array(joined["_day"].astype(np.int32)),
               ACCOUNT_ID: ids(source["accounts"], joined["_code"])}
    for name in group.names:
        if name in ("parent_arr", "sibling_arr"):
            columns[name] = exact_np.decimal(joined[name], 2, with_parent)
        elif name == "children_arr":
            columns[name] = exact_np.decimal(joined[name], 2, np.ones(len(with_parent), bool))
        else:
            columns[name] = pa.array(joined[name].astype(np.int64))
    return pa.table(columns)


# support --------------------------------------------------------------------------------------

def _load_support(con: duckdb.DuckDBPyConnection) -> dict | None:
    """Tickets (opened and closed days, escalated and urgent flags, seconds to resolve, CSAT in
    millionths as DECIMAL(38, 6) holds it); None where a CSAT is not finite or the sums could
    leave 64 bits (the family then stays in SQL)."""
    import numpy as np
    import pyarrow.compute as pc

    fits = con.sql(
        "SELECT COUNT(*) FILTER (WHERE NOT isfinite(csat)) = 0 "
        f"AND COALESCE(SUM(ABS(csat)) * 1000000 < {2**61}, true) "
        f"AND COALESCE(SUM(ABS(date_diff('second', opened_at, closed_at))) < {2**61}, true) "
        "FROM support_tickets WHERE account_id IS NOT NULL AND opened_at IS NOT NULL"
    ).fetchall()[0][0]
    if not fits:
        return None
    tickets = _Source(con.sql(
        "SELECT account_id, "
        "CAST(CAST(opened_at AS DATE) - DATE '1970-01-01' AS BIGINT) AS opened_day, "
        "CAST(CAST(closed_at AS DATE) - DATE '1970-01-01' AS BIGINT) AS closed_day, "
        "COALESCE(escalated, false) AS escalated, "
        "COALESCE(priority IN ('high', 'urgent'), false) AS urgent, "
        "date_diff('second', opened_at, closed_at) AS resolve_seconds, "
        f"CAST({exact('csat')} * 1000000 AS BIGINT) AS csat_micro "
        "FROM support_tickets WHERE account_id IS NOT NULL AND opened_at IS NOT NULL"
    ).to_arrow_table())
    has_csat = pc.is_valid(tickets.columns["csat_micro"]).to_numpy(zero_copy_only=False)
    return {"source": tickets, "opened": tickets.days("opened_day"),
            "closed": tickets.days("closed_day"),
            "escalated": tickets.columns["escalated"].to_numpy(zero_copy_only=False),
            "urgent": tickets.columns["urgent"].to_numpy(zero_copy_only=False),
            "seconds": pc.fill_null(tickets.columns["resolve_seconds"], 0).to_numpy().astype(
                np.int64),
            "csat": pc.fill_null(tickets.columns["csat_micro"], 0).to_numpy().astype(np.int64),
            "has_csat": has_csat}


def _support(tickets: dict, group: FeatureGroup, dates: list[date]) -> pa.Table:
    """``support.group``'s values per (date, account with a ticket its query reads): counts
    by day windows, open tickets, and its two averages as DuckDB's AVG computes them (hours to
    resolve: an AVG of seconds, then / 3600.0; CSAT: an AVG of DECIMAL(38, 6))."""
    import numpy as np
    import pyarrow as pa

    source: _Source = tickets["source"]
    n = len(source.accounts)
    code, opened, closed = source.code, tickets["opened"], tickets["closed"]
    windows = [int(name[len("tickets_"):-1]) for name in group.names
               if name.startswith("tickets_")]
    lookback = max((*windows, 180))
    parts: dict[str, list] = {}

    def put(name: str, value: np.ndarray) -> None:
        parts.setdefault(name, []).append(value)

    for i, as_of in enumerate(dates):
        t = _day(as_of)
        known = opened < t
        read = known & ((opened >= t - lookback) | (closed >= t - lookback))
        accounts = np.flatnonzero(np.bincount(code[read], minlength=n))

        def count(where: np.ndarray, accounts: np.ndarray = accounts) -> np.ndarray:
            return _counts(code, where, n)[accounts]

        put("_day", np.full(len(accounts), i, np.int32))
        put("_code", accounts)
        for w in windows:
            put(f"tickets_{w}d", count(known & (opened >= t - w)))
            put(f"escalations_{w}d", count(known & (opened >= t - w) & tickets["escalated"]))
        put("urgent_tickets_90d", count(known & (opened >= t - 90) & tickets["urgent"]))
        put("open_tickets", count(known & (closed >= t)))
        resolved = known & (closed >= t - 90) & (closed < t)
        put("resolved", count(resolved))
        put("seconds", _sums(code[resolved], tickets["seconds"][resolved], n)[accounts])
        rated = known & (closed >= t - 180) & (closed < t) & tickets["has_csat"]
        put("rated", count(rated))
        put("csat", _sums(code[rated], tickets["csat"][rated], n)[accounts])
    v = {k: np.concatenate(p) for k, p in parts.items()}
    columns = {DAY: pa.array(v["_day"]), ACCOUNT_ID: ids(source.accounts, v["_code"])}
    for name in group.names:
        if name.startswith(("tickets_", "escalations_")) or name in ("urgent_tickets_90d",
                                                                    "open_tickets"):
            columns[name] = exact_np.decimal(v[name], 0)  # a SUM of INTEGER: HUGEINT
    hours = exact_np.average(v["seconds"], v["resolved"]) / 3600.0
    columns["hours_to_resolve_90d"] = pa.array(hours, mask=v["resolved"] == 0)
    columns["csat_180d"] = pa.array(exact_np.average(v["csat"], v["rated"], 6),
                                    mask=v["rated"] == 0)
    return pa.table({name: columns[name] for name in [DAY, ACCOUNT_ID, *group.names]})


def _revenue(terms: revenue_np.Terms, group: FeatureGroup, dates: list[date]) -> pa.Table:
    return revenue_np.rows(terms, group, dates, DAY)


def _voice(answers: voice_np.Answers, group: FeatureGroup, dates: list[date]) -> pa.Table:
    return voice_np.rows(answers, group, dates, DAY)


LOADERS: dict[str, Callable[[duckdb.DuckDBPyConnection], object]] = {
    "activities": _load_activities, "contacts": _load_contacts,
    "hierarchy": _load_hierarchy, "revenue": revenue_np.load, "support": _load_support,
    "voice": voice_np.load}
FORMS: dict[str, Callable[..., pa.Table]] = {
    "activities": _activities, "contacts": _contacts, "hierarchy": _hierarchy,
    "revenue": _revenue, "support": _support, "voice": _voice}
