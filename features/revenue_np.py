"""Revenue's values for every date of a grid chunk, from the subscription terms in numpy.

``revenue.revenue_sql`` aggregates, per date and account, the terms started before the date:
sums of DECIMAL(38, 6) money over the terms in force (now and ``w`` days before), distinct
products, the largest term's plan, and a few minima, maxima and flags. Every boundary it
compares with is a midnight, so each term's day numbers decide (``terms.in_force_days``);
money is held as integer millionths (what DECIMAL(38, 6) holds) and summed exactly in int64.
The terms are read once per grid, sorted by account and then by the single-date ranking's
order (``mrr DESC, plan, subscription_id``), so that per date every aggregate is one
``reduceat`` over the in-force terms' runs of accounts, and the largest term is the first
in-force term of each run.

``discount_avg`` is DuckDB's AVG of a DECIMAL(38, 6), reproduced to the bit from the exact sum
and count (``features.exact_np.average``: a division in long double, as DuckDB's ``avg.cpp``).

The family's output columns are those aggregates rounded to cents (half away from zero, as
DuckDB rounds a DECIMAL) and ratios of DECIMALs cast to DOUBLE (an integer below 2**52 divided by
10**6 is DuckDB's cast); where money is too large for that, the family's own ``_outputs`` SQL
computes them from the aggregates, handed to DuckDB with the SQL's column types.

Where the terms do not fit these assumptions (a null in a column the contract declares not
null, a non-finite number, or money whose millionths could overflow 64-bit sums), the loader
says so and the grid runs the family's SQL instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from features import exact_np
from features.catalogue import ACCOUNT_ID, FeatureGroup, exact
from features.terms import billing_months, in_force_days

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pyarrow as pa

EPOCH = date(1970, 1, 1)
NO_DAY = 2**38  # a null date: after every boundary
MICRO = 1_000_000
#: Millionths summed in int64: every partial sum stays below this bound when the sum of all
#: absolute values does (checked when the terms are read).
SUM_BOUND = 2**62
#: Products as bits of one int64 per account, when there are at most this many distinct ones.
MASK_PRODUCTS = 62


@dataclass
class Terms:
    """The subscription terms as arrays, sorted by account, then ``mrr DESC, plan,
    subscription_id`` (the single-date ranking's order)."""

    con: duckdb.DuckDBPyConnection
    accounts: pa.Array  # account ids; ``code`` indexes them
    code: np.ndarray
    start: np.ndarray  # day numbers (null end: ``has_end`` False; null cancellation: NO_DAY)
    end: np.ndarray
    has_end: np.ndarray
    cancelled: np.ndarray
    mrr: np.ndarray  # millionths
    discount_x_mrr: np.ndarray
    discount: np.ndarray
    seats: np.ndarray
    product: np.ndarray  # product code, -1 for a null product
    products: int
    plan: pa.Array
    term_months: np.ndarray
    annual: np.ndarray  # billing period of 12 months or more
    known_period: np.ndarray
    renew_off: np.ndarray  # a fixed term that will not renew automatically
    first_start: np.ndarray  # per account


def _micro(value: str) -> str:
    return f"CAST({exact(value)} * {MICRO} AS BIGINT)"


def load(con: duckdb.DuckDBPyConnection) -> Terms | None:
    """The terms, or None where the numpy form does not apply (see the module's text)."""
    import numpy as np
    import pyarrow.compute as pc

    fits = con.sql(f"""
SELECT COUNT(*) FILTER (WHERE mrr IS NULL OR discount_pct IS NULL OR seats IS NULL
    OR NOT isfinite(mrr) OR NOT isfinite(discount_pct)) = 0
  AND COALESCE(SUM(ABS(mrr)) * {MICRO} < {SUM_BOUND / 2}, true)
  AND COALESCE(SUM(ABS(mrr * discount_pct)) * {MICRO} < {SUM_BOUND / 2}, true)
  AND COALESCE(SUM(ABS(discount_pct)) * {MICRO} < {SUM_BOUND / 2}, true)
  AND COALESCE(SUM(ABS(seats)) < {SUM_BOUND / 2}, true)
FROM subscriptions WHERE account_id IS NOT NULL AND start_date IS NOT NULL""").fetchall()[0][0]
    if not fits:
        return None
    table = con.sql(f"""
SELECT s.account_id, s.product, s.plan,
  CAST(s.start_date - DATE '1970-01-01' AS BIGINT) AS start_day,
  CAST(s.end_date - DATE '1970-01-01' AS BIGINT) AS end_day,
  CAST(CAST(s.cancelled_at AS DATE) - DATE '1970-01-01' AS BIGINT) AS cancelled_day,
  {_micro('s.mrr')} AS mrr, {_micro('s.discount_pct * s.mrr')} AS discount_x_mrr,
  {_micro('s.discount_pct')} AS discount, CAST(s.seats AS BIGINT) AS seats,
  CASE WHEN s.end_date IS NULL THEN 1 ELSE date_diff('month', s.start_date, s.end_date) END
    AS term_months,
  COALESCE({billing_months()} >= 12, false) AS annual,
  {billing_months()} IS NOT NULL AS known_period,
  COALESCE(s.end_date IS NOT NULL AND NOT s.auto_renew, false) AS renew_off
FROM subscriptions s WHERE s.account_id IS NOT NULL AND s.start_date IS NOT NULL
ORDER BY s.account_id, s.mrr DESC, s.plan, s.subscription_id""").to_arrow_table()
    encoded = pc.dictionary_encode(table[ACCOUNT_ID].combine_chunks())
    code = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    products = pc.dictionary_encode(table["product"].combine_chunks())

    def ints(name: str, null: int = 0) -> np.ndarray:
        return pc.fill_null(table[name], null).to_numpy().astype(np.int64)

    def flags(name: str) -> np.ndarray:
        return table[name].to_numpy(zero_copy_only=False).astype(bool)

    start = ints("start_day")
    first = np.full(len(encoded.dictionary), NO_DAY, np.int64)
    np.minimum.at(first, code, start)
    return Terms(
        con=con, accounts=encoded.dictionary, code=code, start=start, end=ints("end_day"),
        has_end=pc.is_valid(table["end_day"]).to_numpy(zero_copy_only=False),
        cancelled=ints("cancelled_day", NO_DAY), mrr=ints("mrr"),
        discount_x_mrr=ints("discount_x_mrr"), discount=ints("discount"), seats=ints("seats"),
        product=pc.fill_null(products.indices, -1).to_numpy().astype(np.int64),
        products=len(products.dictionary), plan=table["plan"].combine_chunks(),
        term_months=ints("term_months"), annual=flags("annual"),
        known_period=flags("known_period"), renew_off=flags("renew_off"), first_start=first)


class _Runs:
    """The rows of ``where`` (terms sorted by account) as runs of one account each: ``rows``
    the rows, ``starts`` where each run starts among them, ``account`` each run's account."""

    def __init__(self, code: np.ndarray, where: np.ndarray):
        import numpy as np

        self.rows = np.flatnonzero(where)
        c = code[self.rows]
        self.starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]]) if len(c) else \
            np.zeros(0, np.int64)
        self.account = c[self.starts]

    def reduce(self, ufunc, values: np.ndarray, empty, accounts: int) -> np.ndarray:
        """``ufunc`` over each account's rows of ``values`` (``empty`` where it has none)."""
        import numpy as np

        out = np.full(accounts, empty, dtype=np.asarray(values).dtype)
        if len(self.rows):
            out[self.account] = ufunc.reduceat(values[self.rows], self.starts)
        return out


def _distinct_products(terms: Terms, runs: _Runs, accounts: int) -> np.ndarray:
    """COUNT(DISTINCT product) per account over the runs' rows (a null product not counted):
    bits of one int64 per account when the products are few, else distinct (account, product)
    pairs."""
    import numpy as np

    product = terms.product[runs.rows]
    if terms.products <= MASK_PRODUCTS:
        bits = np.where(product >= 0, np.left_shift(1, np.maximum(product, 0)), 0)
        mask = np.zeros(accounts, np.int64)
        if len(bits):
            mask[runs.account] = np.bitwise_or.reduceat(bits, runs.starts)
        return np.bitwise_count(mask).astype(np.int64)
    known = product >= 0
    pairs = np.unique(terms.code[runs.rows][known] * (terms.products + 1) + product[known])
    return np.bincount(pairs // (terms.products + 1), minlength=accounts)


def change_windows(group: FeatureGroup) -> list[int]:
    return [int(name[len("mrr_change_"):-1]) for name in group.names
            if name.startswith("mrr_change_") and name.endswith("d")]


def aggregates(terms: Terms, group: FeatureGroup, dates: list[date]) -> dict[str, np.ndarray]:
    """``revenue_sql``'s inner aggregates (its ``agg`` relation) as arrays, one value per (date
    index ``_day``, account ``_code`` with a term started before the date); money in
    millionths; ``in_force`` counts the terms in force (AVG's count), ``top`` is the largest
    term's row (-1: none in force)."""
    import numpy as np

    n = len(terms.accounts)
    parts: dict[str, list] = {}

    def put(name: str, value: np.ndarray) -> None:
        parts.setdefault(name, []).append(value)

    for i, as_of in enumerate(dates):
        t = (as_of - EPOCH).days
        known = np.flatnonzero(terms.first_start < t)
        now = _Runs(terms.code, in_force_days(terms.start, terms.end, terms.has_end,
                                              terms.cancelled, t))

        def total(values: np.ndarray, runs: _Runs = now, known: np.ndarray = known
                  ) -> np.ndarray:
            return runs.reduce(np.add, values, 0, n)[known]

        put("_day", np.full(len(known), i, np.int32))
        put("_code", known)
        put("mrr", total(terms.mrr))
        for w in change_windows(group):
            ago = _Runs(terms.code, in_force_days(terms.start, terms.end, terms.has_end,
                                                  terms.cancelled, t - w))
            put(f"mrr_{w}d_ago", total(terms.mrr, ago))
        put("products_held", _distinct_products(terms, now, n)[known])
        put("seats", total(terms.seats))
        put("discount_x_mrr", total(terms.discount_x_mrr))
        put("discount_total", total(terms.discount))
        put("in_force", total(np.ones(len(terms.code), np.int64)))
        left = np.where(terms.has_end, terms.end - t, NO_DAY)
        put("days_to_renewal", now.reduce(np.minimum, left, NO_DAY, n)[known])
        put("contract_term_months", now.reduce(np.maximum, terms.term_months, -2**62, n)[known])
        put("annual_mrr", total(np.where(terms.annual, terms.mrr, 0)))
        put("known_period_mrr", total(np.where(terms.known_period, terms.mrr, 0)))
        put("auto_renew_off", now.reduce(np.maximum, terms.renew_off.astype(np.int32), 0,
                                         n)[known])
        notice = (terms.has_end & (terms.cancelled < t)).astype(np.int32)
        put("cancellation_notice", now.reduce(np.maximum, notice, 0, n)[known])
        put("tenure_days", t - terms.first_start[known])
        top = np.full(n, -1, np.int64)
        top[now.account] = now.rows[now.starts]  # the first in force: the largest term
        put("top", top[known])
    return {k: np.concatenate(p) for k, p in parts.items()}


def _keys(terms: Terms, v: dict[str, np.ndarray], day_column: str) -> dict[str, pa.Array]:
    import pyarrow as pa

    return {day_column: pa.array(v["_day"]),
            ACCOUNT_ID: terms.accounts.take(pa.array(v["_code"]))}


def _passed(terms: Terms, v: dict[str, np.ndarray]) -> dict[str, pa.Array]:
    """The aggregates the family's outputs pass on as they are, with the SQL's types."""
    import numpy as np
    import pyarrow as pa

    none = v["in_force"] == 0
    return {"products_held": pa.array(v["products_held"].astype(np.int64)),
            "seats": exact_np.decimal(v["seats"], 0),  # a SUM of BIGINT: HUGEINT
            "days_to_renewal": pa.array(v["days_to_renewal"],
                                        mask=v["days_to_renewal"] == NO_DAY),
            "contract_term_months": pa.array(v["contract_term_months"], mask=none),
            "auto_renew_off": pa.array(v["auto_renew_off"]),
            "cancellation_notice": pa.array(v["cancellation_notice"]),
            "tenure_days": pa.array(v["tenure_days"]),
            "plan_tier": terms.plan.take(pa.array(v["top"], mask=v["top"] < 0))}


def _discount_avg(v: dict[str, np.ndarray]) -> pa.Array:
    import pyarrow as pa

    return pa.array(exact_np.average(v["discount_total"], v["in_force"], 6),
                    mask=v["in_force"] == 0)


def _agg_table(terms: Terms, group: FeatureGroup, v: dict[str, np.ndarray], day_column: str
               ) -> pa.Table:
    """The aggregates as ``revenue_sql``'s ``agg`` relation (DECIMAL(38, 6) money)."""
    import pyarrow as pa

    windows = change_windows(group)
    return pa.table({
        **_keys(terms, v, day_column),
        **{name: exact_np.decimal(v[name], 6) for name in
           ["mrr", *[f"mrr_{w}d_ago" for w in windows], "discount_x_mrr", "annual_mrr",
            "known_period_mrr"]},
        "discount_avg": _discount_avg(v), **_passed(terms, v)})


def _double(micro: np.ndarray) -> np.ndarray:
    """DuckDB's CAST of a DECIMAL(38, 6) to DOUBLE, for |micro| <= 2**52: the integer
    (exact as a double) divided by 10**6."""
    import numpy as np

    return micro.astype(np.float64) / 1e6


def _ratio(numerator: np.ndarray, denominator: np.ndarray, where: np.ndarray) -> pa.Array:
    """``features.catalogue.ratio`` of two DECIMAL(38, 6) values, null outside ``where``."""
    import numpy as np
    import pyarrow as pa

    with np.errstate(invalid="ignore", divide="ignore"):
        value = _double(numerator) / _double(denominator)
    return pa.array(np.where(where, value, 0.0), mask=~where)


def _cents(micro: np.ndarray) -> pa.Array:
    """ROUND(x, 2) of a DECIMAL(38, 6) (half away from zero) as DECIMAL(38, 2)."""
    return exact_np.decimal(exact_np.round_half_away(micro, 4), 2)


def outputs(terms: Terms, group: FeatureGroup, v: dict[str, np.ndarray], day_column: str
            ) -> pa.Table | None:
    """``revenue._outputs`` in numpy: rounding of exact sums to cents, and ratios of
    DECIMALs cast to DOUBLE (exact integers over 10**6, as DuckDB casts them); None where a
    value is too large for that cast to be one division (the SQL then computes them)."""
    import numpy as np
    import pyarrow as pa

    windows = change_windows(group)
    mrr = v["mrr"]
    ago = {w: v[f"mrr_{w}d_ago"] for w in windows}
    money = [mrr, *ago.values(), *(mrr - a for a in ago.values()), v["discount_x_mrr"],
             v["annual_mrr"], v["known_period_mrr"]]
    if any(len(m) and int(np.abs(m).max()) > 2**52 for m in money):
        return None
    columns = {**_keys(terms, v, day_column), "mrr": _cents(mrr), "arr": _cents(12 * mrr),
               **{f"mrr_change_{w}d": _cents(mrr - ago[w]) for w in windows},
               **{f"mrr_change_{w}d_pct": _ratio(mrr - ago[w], ago[w], ago[w] > 0)
                  for w in windows if w >= 90}}
    discount = _ratio(v["discount_x_mrr"], mrr, mrr > 0)
    columns["discount_pct"] = pa.array(np.where(mrr > 0, discount.to_numpy(
        zero_copy_only=False), exact_np.average(v["discount_total"], v["in_force"], 6)),
        mask=(mrr <= 0) & (v["in_force"] == 0))
    columns["annual_billing_share"] = _ratio(v["annual_mrr"], v["known_period_mrr"],
                                             v["known_period_mrr"] > 0)
    columns |= _passed(terms, v)
    return pa.table({name: columns[name] for name in [day_column, ACCOUNT_ID, *group.names]})


def rows(terms: Terms, group: FeatureGroup, dates: list[date], day_column: str) -> pa.Table:
    """The family's rows for each date (``day_column``: its index in ``dates``), one per
    account with a term started before it, with its declared columns, as its SQL gives them:
    in numpy, or (very large money) the family's ``_outputs`` SQL over the aggregates."""
    from features.families.revenue import _outputs

    v = aggregates(terms, group, dates)
    done = outputs(terms, group, v, day_column)
    if done is not None:
        return done
    sql = (f"SELECT {day_column}, {ACCOUNT_ID}, {_outputs(tuple(change_windows(group)))} "
           "FROM agg")
    return terms.con.from_arrow(_agg_table(terms, group, v, day_column)).query(
        "agg", sql).to_arrow_table()
