"""Support's numpy grid form (features.families_np) gives, for every date and account, the values
of the family's single-date SQL, to the bit (its averages as DuckDB's AVG computes them); the
grid built with it gives every date its single-date snapshot."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import families_np
from features.build import build_grid, build_snapshot
from features.sources import RawTables
from tests.features.feature_fixture import frames
from tests.features.test_families_np import DAY0, GROUPS, around, boundary_book, family_values

T = pd.Timestamp
TICKET_COLUMNS = ["ticket_id", "account_id", "opened_at", "closed_at", "priority", "escalated",
                  "csat"]


def with_tickets(book: dict[str, pd.DataFrame], tickets: list[tuple]) -> dict:
    if tickets:
        book["support_tickets"] = pd.concat([book["support_tickets"], pd.DataFrame(
            [(f"X{i}", *row) for i, row in enumerate(tickets)], columns=TICKET_COLUMNS)],
            ignore_index=True).astype({"opened_at": "datetime64[us]",
                                       "closed_at": "datetime64[us]"})
    return book


def test_support_in_numpy_equals_its_sql_on_the_boundaries():
    at = T(DAY0)
    five = [("Z7", at - pd.Timedelta(days=10), at - pd.Timedelta(days=i + 1), "low", False, 3.82)
            for i in range(5)]  # CSAT 3.82 five times: 3.8200000000000003 as sum / 1e6 / count
    tables = RawTables.from_frames(with_tickets(boundary_book(), five))
    dates = around(DAY0, 2, 2) + around(DAY0 + timedelta(days=30), 1, 1) + around(
        DAY0 + timedelta(days=90), 1, 1) + around(DAY0 + timedelta(days=180), 1, 1)
    sql, numpy = family_values(tables, "support", dates)
    assert numpy == sql
    a3, a3_next = numpy[(DAY0, "A3")], numpy[(DAY0 + timedelta(days=1), "A3")]
    # the ticket closed at DAY0's midnight is still open at DAY0; the one closed a microsecond
    # before took 30 days; CSAT of the two closed within 180 days (at -180 days: in)
    assert a3["open_tickets"] == 2 and a3["hours_to_resolve_90d"] == 720.0
    assert a3["csat_180d"] == (3.3 + 1.0) / 2
    assert a3["tickets_30d"] == 1 and a3["escalations_30d"] == 1  # at -30 days, not before
    assert a3["urgent_tickets_90d"] == 2
    assert a3_next["open_tickets"] == 1 and a3_next["hours_to_resolve_90d"] == 720.0
    assert a3_next["csat_180d"] == 3.9  # 4.5 and 3.3; the 1.0 now 181 days ago
    assert numpy[(DAY0, "Z7")]["csat_180d"] == 3.82
    assert 5 * 3_820_000 / 1e6 / 5 != 3.82  # the formula that did not match


def test_every_day_around_the_boundaries_equals_its_single_date_snapshot():
    tables = RawTables.from_frames(boundary_book())
    assert families_np.applies(tables.con, GROUPS["support"], {})
    dates = around(DAY0, 2, 2) + around(DAY0 + timedelta(days=180), 1, 1)
    grid = dict(build_grid(tables, dates, workers=1))
    for day in dates:
        assert grid[day].equals(build_snapshot(tables, day)), day


MOMENTS = st.integers(-420, 10).map(
    lambda h: datetime.combine(DAY0, datetime.min.time()) + timedelta(hours=12 * h)
    + timedelta(microseconds=(h % 3) - 1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tickets=st.lists(st.tuples(
    st.sampled_from(["A1", "A3", "A4"]), MOMENTS,
    st.one_of(st.none(), st.integers(0, 24 * 200).map(lambda h: timedelta(hours=h, seconds=h % 7))),
    st.sampled_from(["low", "high", "urgent", "whatever", None]),
    st.sampled_from([True, False, None]), st.sampled_from([None, 1.0, 3.3, 3.82, 4.5, 5.0])),
    max_size=25))
def test_support_in_numpy_equals_its_sql_for_any_tickets(tickets):
    """For all tickets near the dates (opened and closed at and around midnight, still open,
    without CSAT): the same values per date and account."""
    rows = [(a, opened, None if took is None else opened + took, p, e, c)
            for a, opened, took, p, e, c in tickets]
    book = frames()
    book["support_tickets"] = book["support_tickets"].iloc[:0]
    tables = RawTables.from_frames(with_tickets(book, rows))
    dates = [DAY0 - timedelta(days=d) for d in (181, 180, 91, 90, 31, 30, 1, 0)] + [
        DAY0 + timedelta(days=1)]
    sql, numpy = family_values(tables, "support", dates)
    assert numpy == sql
