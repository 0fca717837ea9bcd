"""Revenue's numpy grid form (features.revenue_np) gives, for every date and account, the values
of the family's single-date SQL, to the bit; the grid built with it gives every date its
single-date snapshot."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import exact_np, families_np, revenue_np
from features.build import build_grid, build_snapshot
from features.sources import RawTables
from tests.features.feature_fixture import frames
from tests.features.test_families_np import DAY0, GROUPS, around, family_values

T = pd.Timestamp
D0 = DAY0
SUB_COLUMNS = ["subscription_id", "account_id", "product", "plan", "seats", "mrr", "start_date",
               "end_date", "cancelled_at", "billing_period", "auto_renew", "discount_pct"]


def days(n: int) -> date:
    return D0 + timedelta(days=n)


def revenue_book(terms: list[tuple] | None = None) -> dict[str, pd.DataFrame]:
    """The fixture's book with the revenue boundaries around DAY0 (or ``terms`` instead)."""
    at = T(D0)
    micro = pd.Timedelta(microseconds=1)
    terms = terms if terms is not None else [
        # R1: a term ending on DAY0 (in force at DAY0, not after) renewed from DAY0 (known from
        # DAY0 + 1); an open-ended add-on cancelled at DAY0's midnight; the same product held
        # twice; MRR 100.005 + 20: 120.005, half a cent, rounded away from zero
        ("R1a", "R1", "core", "pro", 10, 100.005, days(-100), D0, None, "annual", False, 10.0),
        ("R1b", "R1", "core", "pro", 12, 100.005, D0, days(365), None, "annual", True, 10.0),
        ("R1c", "R1", "addon", "basic", 2, 20.0, days(-40), None, at, "monthly", True, 0.0),
        ("R1d", "R1", "addon", "basic", 1, 0.0, days(-10), None, None, "monthly", True, 0.0),
        # R2: equal MRR: the plan first in order (enterprise) is the largest term's; notice
        # given on a fixed term (it runs to its end, and will not renew)
        ("R2a", "R2", "core", "pro", 5, 50.0, days(-60), days(30), None, "12", True, 5.0),
        ("R2b", "R2", "seats", "enterprise", 5, 50.0, days(-60), days(30), at - pd.Timedelta(
            days=5), "quarterly", False, 5.0),
        # R3: MRR 30 days before at the boundary: a term in force exactly at DAY0 - 30 (its
        # end), another starting then (not yet in force at DAY0 - 30)
        ("R3a", "R3", "core", "pro", 1, 70.0, days(-31), days(-30), None, "monthly", True, 0.0),
        ("R3b", "R3", "core", "pro", 1, 30.0, days(-30), None, None, "bogus", True, 0.0),
        # R4: nothing in force at DAY0 (a term of long ago, an open-ended one cancelled a
        # microsecond before DAY0): a row of zeros, no plan, no renewal
        ("R4a", "R4", "core", "pro", 1, 80.0, days(-200), days(-100), None, "monthly", True, 0.0),
        ("R4b", "R4", "core", "pro", 1, 10.0, days(-20), None, at - micro, "monthly", True, 0.0),
        # R5: free terms (MRR 0) with discounts 3.82: their DECIMAL average is 3.82, where the
        # double formula sum / 1e6 / count gives 3.8200000000000003
        *[(f"R5{i}", "R5", f"p{i}", "free", 1, 0.0, days(-5), None, None, "monthly", True, 3.82)
          for i in range(5)],
    ]
    book = frames()
    if terms:
        book["subscriptions"] = pd.concat([book["subscriptions"], pd.DataFrame(
            terms, columns=SUB_COLUMNS)], ignore_index=True)
    return book


def test_revenue_in_numpy_equals_its_sql_on_the_boundaries():
    tables = RawTables.from_frames(revenue_book())
    dates = around(D0, 2, 2) + around(days(30), 1, 1) + around(days(90), 1, 1) + around(
        days(180), 1, 1) + around(days(-100), 1, 1)
    sql, numpy = family_values(tables, "revenue", dates)
    assert numpy == sql
    r1, r1_next = numpy[(D0, "R1")], numpy[(days(1), "R1")]
    assert r1["mrr"] == Decimal("120.01")  # 100.005 + 20, half a cent up
    assert r1["arr"] == Decimal("1440.06")
    assert r1["products_held"] == 2  # core, and the add-on held twice
    assert r1["seats"] == 13 and r1["days_to_renewal"] == 0 and r1["contract_term_months"] == 4
    assert r1["discount_pct"] == 100.005 * 10 / 120.005
    assert r1["annual_billing_share"] == 100.005 / 120.005
    assert r1["auto_renew_off"] == 1 and r1["cancellation_notice"] == 0
    assert r1["tenure_days"] == 100 and r1["plan_tier"] == "pro"
    # the day after: the renewal in force, the add-on cancelled at DAY0's midnight gone
    assert r1_next["mrr"] == Decimal("100.01") and r1_next["days_to_renewal"] == 364
    assert r1_next["auto_renew_off"] == 0 and r1_next["contract_term_months"] == 12
    r2 = numpy[(D0, "R2")]
    assert r2["plan_tier"] == "enterprise" and r2["cancellation_notice"] == 1
    assert r2["annual_billing_share"] == 0.5  # "12" months in, "quarterly" out
    r3 = numpy[(D0, "R3")]
    # 30 days before DAY0: R3a at its end, not R3b starting then (30 - 70)
    assert r3["mrr"] == Decimal("30.00") and r3["mrr_change_30d"] == Decimal("-40.00")
    assert r3["annual_billing_share"] is None  # in force: only "bogus", no known period
    assert numpy[(days(1), "R3")]["mrr_change_30d"] == Decimal("0.00")  # R3b then, not R3a
    r4 = numpy[(D0, "R4")]
    assert r4["mrr"] == 0 and r4["plan_tier"] is None and r4["days_to_renewal"] is None
    assert r4["discount_pct"] is None and r4["contract_term_months"] is None
    assert r4["mrr_change_180d_pct"] == -1.0 and r4["mrr_change_90d_pct"] is None
    r5 = numpy[(D0, "R5")]
    assert r5["discount_pct"] == 3.82 and r5["products_held"] == 5
    assert 19_100_000 / 1e6 / 5 != 3.82  # the formula that did not match


def test_the_decimal_average_is_duckdbs():
    """AVG of DECIMAL(38, 6) values: the sum and count divided in long double (x87), rounded
    to a double, for many random groups (some negative, some of 6 decimals)."""
    import duckdb

    rng = np.random.default_rng(7)
    n = 20_000
    group = rng.integers(0, 3_000, n)
    micro = rng.integers(-5 * 10**7, 4 * 10**7, n) // 10 ** rng.integers(0, 7, n) * \
        10 ** rng.integers(0, 7, n) % 10**9
    con = duckdb.connect()
    t = pa.table({"g": group, "v": exact_np.decimal(micro, 6)})  # noqa: F841 (DuckDB reads t)
    # apart: a query that also sums v has its AVG rewritten as SUM / COUNT, in doubles
    avg = con.sql("SELECT g, AVG(v) AS a FROM t GROUP BY g ORDER BY g").fetchnumpy()
    got = con.sql("SELECT g, CAST(SUM(v) * 1000000 AS BIGINT) AS s, COUNT(v) AS c FROM t "
                  "GROUP BY g ORDER BY g").fetchnumpy()
    assert np.array_equal(exact_np.average(got["s"], got["c"], 6), avg["a"])
    assert not np.array_equal(got["s"] / 1e6 / got["c"], avg["a"])


def test_every_day_around_the_boundaries_equals_its_single_date_snapshot():
    tables = RawTables.from_frames(revenue_book())
    dates = around(D0, 2, 2) + around(days(30), 1, 1)
    grid = dict(build_grid(tables, dates, workers=1))
    for day in dates:
        assert grid[day].equals(build_snapshot(tables, day)), day


def test_terms_outside_the_numpy_forms_bounds_stay_exact():
    """Money too large for one double division: the outputs by the family's SQL over the
    aggregates; a null MRR (outside the contract): the family in SQL."""
    big = [("B1", "R1", "core", "pro", 1, 9.5e9, days(-40), None, None, "monthly", True, 1.5),
           ("B2", "R1", "core", "pro", 1, 0.015, days(-40), None, None, "monthly", True, 2.5)]
    tables = RawTables.from_frames(revenue_book(big))
    group = GROUPS["revenue"]
    terms = revenue_np.load(tables.con)
    assert revenue_np.outputs(terms, group, revenue_np.aggregates(terms, group, [D0]), "d") \
        is None
    sql, numpy = family_values(tables, "revenue", [D0, days(1)])
    assert numpy == sql and numpy[(D0, "R1")]["mrr"] == Decimal("9500000000.02")
    null_mrr = revenue_book([("N1", "R1", "core", "pro", 1, None, days(-40), None, None,
                              "monthly", True, 0.0)])
    tables = RawTables.from_frames(null_mrr)
    assert not families_np.applies(tables.con, group, {})
    grid = dict(build_grid(tables, [D0, days(1)], workers=1))
    assert grid[D0].equals(build_snapshot(tables, D0))


MRRS = st.sampled_from([0.0, 0.0, 0.0, 0.005, 0.015, 10.0, 10.005, 33.333333, 50.0, 99.995,
                        1e6 / 3])  # free terms weighed: their discounts are averaged


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(terms=st.lists(st.tuples(
    st.sampled_from(["R1", "R2", "A1"]), st.sampled_from(["core", "addon", None]),
    st.sampled_from(["pro", "basic", "enterprise", None]), st.integers(0, 20), MRRS,
    st.integers(-200, 3), st.one_of(st.none(), st.integers(-40, 400)),
    st.one_of(st.none(), st.integers(-400, 10).map(lambda h: timedelta(hours=12 * h)
                                                   + timedelta(microseconds=h % 3 - 1))),
    st.sampled_from(["monthly", "annual", "12", "bogus", None]), st.booleans(),
    st.sampled_from([0.0, 3.82, 10.0, 12.5, 33.333333])), max_size=20))
def test_revenue_in_numpy_equals_its_sql_for_any_terms(terms):
    """For all terms near the dates (cancellations at and around midnight, ties of MRR and plan,
    null products and plans, free terms whose discounts are averaged): the same values per date
    and account."""
    rows = [(f"S{i}", a, p, plan, seats, mrr, days(s), None if e is None else days(s + abs(e)),
             None if c is None else datetime.combine(D0, datetime.min.time()) + c, b, r, d)
            for i, (a, p, plan, seats, mrr, s, e, c, b, r, d) in enumerate(terms)]
    book = revenue_book(rows)
    book["subscriptions"] = book["subscriptions"].astype({"cancelled_at": "datetime64[us]"})
    tables = RawTables.from_frames(book)
    dates = [days(-d) for d in (181, 180, 91, 90, 31, 30, 1, 0)] + [days(1)]
    sql, numpy = family_values(tables, "revenue", dates)
    assert numpy == sql
