"""The numpy grid forms of activities, contacts and hierarchy (features.families_np) give, for
every date and account, the values of the family's single-date SQL (filled as the snapshot
fills them), and the grid assembly (features.grid_assembly) gives every date its single-date
snapshot."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import families_np
from features.build import build_grid, build_snapshot, feature_groups
from features.catalogue import ACCOUNT_ID, Cutoff
from features.sources import RawTables
from tests.features.feature_fixture import frames

T = pd.Timestamp
DAY0 = date(2025, 3, 1)
GROUPS = {g.name: g for g in feature_groups()}


def family_values(tables: RawTables, name: str, dates: list[date]):
    """(SQL, numpy) values of family ``name`` per (date, account), filled as in a snapshot."""
    group = GROUPS[name]
    fill = {f.name: f.fill for f in group.features}
    got = families_np.rows(tables.con, group, dates, {}).to_pylist()
    numpy = {(dates[row.pop(families_np.DAY)], row.pop(ACCOUNT_ID)): row for row in got}
    sql = {}
    for day in dates:
        for row in tables.con.sql(group.cte(Cutoff(day))).to_arrow_table().to_pylist():
            account = row.pop(ACCOUNT_ID)
            if account is not None:  # a NULL account joins no snapshot's accounts
                sql[(day, account)] = row
    keys = set(sql) | set(numpy)
    filled = {k: fill for k in keys}

    def norm(values: dict) -> dict:
        return {c: (None if v is None else v) for c, v in values.items()}  # 3 == Decimal(3)

    return ({k: norm(sql.get(k, filled[k])) for k in keys},
            {k: norm(numpy.get(k, filled[k])) for k in keys})


def boundary_book() -> dict[str, pd.DataFrame]:
    """Activities and contacts on the windows' edges of the dates around DAY0: at midnight and
    a microsecond before it, 30/90/180 days before, a QBR long ago (and one in 1969), NULL
    types and roles, an account outside the subscriptions, a contact ending on a date."""
    book = frames()
    at = T(DAY0)
    micro = pd.Timedelta(microseconds=1)
    activities = [
        ("A1", at, "qbr"),  # known from DAY0 + 1 only
        ("A1", at - micro, "call"),
        ("A1", at - pd.Timedelta(days=30), "email"),
        ("A1", at - pd.Timedelta(days=30) - micro, "email"),
        ("A1", at - pd.Timedelta(days=90), "onboarding session"),
        ("A1", at - pd.Timedelta(days=90) - micro, "onboarding session"),
        ("A3", at - pd.Timedelta(days=180), "qbr"),
        ("A3", at - pd.Timedelta(days=180) - micro, "qbr"),
        ("A4", at - pd.Timedelta(days=400), "qbr"),  # only a QBR, long ago
        ("A4", T("1969-12-31 23:00"), "qbr"),
        ("A4", at - pd.Timedelta(days=5), None),
        ("Z9", at - pd.Timedelta(days=3), "call"),  # no subscription
        (None, at - pd.Timedelta(days=3), "qbr"),
        ("A5", None, "qbr"),
    ]
    day = pd.Timestamp(DAY0).date()
    contacts = [
        ("K1", "A3", "champion", day - timedelta(days=300), day),  # in role through DAY0
        ("K2", "A3", "champion", day - timedelta(days=300), day - timedelta(days=90)),
        ("K3", "A3", "champion", day - timedelta(days=300), day - timedelta(days=91)),
        ("K4", "A3", "economic buyer", day, None),  # known from DAY0 + 1
        ("K5", "A3", None, day - timedelta(days=1), None),
        ("K6", "A4", "executive sponsor", day - timedelta(days=10), day - timedelta(days=1)),
        ("K7", "A4", "detractor", None, None),  # never known
        ("K8", "Z9", "champion", day - timedelta(days=10), None),
    ]
    hour = pd.Timedelta(hours=1)
    tickets = [  # opened, closed, priority, escalated, csat
        ("A3", at - pd.Timedelta(days=30), at, "urgent", True, 4.5),  # closed at DAY0
        ("A3", at - pd.Timedelta(days=30) - micro, at - micro, "high", None, 3.3),
        ("A3", at - pd.Timedelta(days=90), None, None, False, None),  # still open
        ("A3", at - pd.Timedelta(days=400), at - pd.Timedelta(days=180), "low", True, 1.0),
        ("A3", at - pd.Timedelta(days=400), at - pd.Timedelta(days=179) - hour, "low", True,
         None),
        ("A4", at - pd.Timedelta(days=2), at - pd.Timedelta(days=3), "urgent", True, 2.0),
        ("A4", at, at + hour, "high", True, 5.0),  # known from DAY0 + 1
        ("Z9", at - pd.Timedelta(days=3), None, "urgent", True, None),
    ]
    accounts = [  # A7 under A2, known from DAY0 + 1; A8 under A7; A9 under an unknown parent
        ("A7", "Seven", "A2", "SMB", "retail", "EMEA", "bo", at),
        ("A8", "Eight", "A7", "SMB", "retail", "EMEA", "bo", at - pd.Timedelta(days=10)),
        ("A9", "Nine", "Z9", "SMB", "retail", "EMEA", "bo", at - pd.Timedelta(days=400)),
    ]
    start = day - timedelta(days=100)
    terms = [  # ARR 0.015 and -0.015: half a cent, rounded away from zero
        ("S71", "A7", "core", "basic", 1, 0.00125, start, None, None, "monthly", True, 0.0),
        ("S81", "A8", "core", "basic", 1, -0.00125, start, None, None, "monthly", True, 0.0),
        ("S82", "A8", "core", "pro", 2, 100.0, start, None, at, "monthly", True, 0.0),
        ("S91", "A9", "core", "pro", 2, 50.0, start, day, None, "annual", False, 5.0),
    ]
    book["accounts"] = pd.concat([book["accounts"], pd.DataFrame(
        accounts, columns=book["accounts"].columns)], ignore_index=True)
    book["subscriptions"] = pd.concat([book["subscriptions"], pd.DataFrame(
        terms, columns=book["subscriptions"].columns)], ignore_index=True)
    book["support_tickets"] = pd.concat([book["support_tickets"], pd.DataFrame(
        [(f"T{i}", a, o, c, p, e, x) for i, (a, o, c, p, e, x) in enumerate(tickets)],
        columns=book["support_tickets"].columns)], ignore_index=True)
    book["activities"] = pd.concat([book["activities"], pd.DataFrame(
        activities, columns=book["activities"].columns)], ignore_index=True)
    book["contacts"] = pd.concat([book["contacts"], pd.DataFrame(
        contacts, columns=book["contacts"].columns)], ignore_index=True)
    return book


def around(day: date, before: int, after: int) -> list[date]:
    return [day + timedelta(days=i) for i in range(-before, after + 1)]


def test_the_numpy_forms_equal_the_sql_on_their_boundaries():
    tables = RawTables.from_frames(boundary_book())
    dates = around(DAY0, 2, 2) + around(DAY0 + timedelta(days=30), 1, 1) + around(
        DAY0 + timedelta(days=90), 1, 1) + around(DAY0 + timedelta(days=180), 1, 1)
    for name in ("activities", "contacts", "hierarchy"):
        sql, numpy = family_values(tables, name, dates)
        assert numpy == sql, name
    _, act = family_values(tables, "activities", [DAY0, DAY0 + timedelta(days=1)])
    assert act[(DAY0, "A1")]["touches_30d"] == 2  # the call a microsecond before, the email
    assert act[(DAY0, "A1")]["touches_90d"] == 5  # the 3 in 30 days, the onboarding session
    # at -90 days (not the one a microsecond before) and the fixture's QBR of January 15
    assert act[(DAY0, "A1")]["onboarding_sessions_90d"] == 1
    assert act[(DAY0 + timedelta(days=1), "A1")]["days_since_last_qbr"] == 1
    assert act[(DAY0, "A3")]["qbrs_180d"] == 1  # at -180 days, not a microsecond before
    assert act[(DAY0, "A4")]["days_since_last_qbr"] == 400
    _, con = family_values(tables, "contacts", [DAY0, DAY0 + timedelta(days=1)])
    assert con[(DAY0, "A3")]["champions"] == 1  # K1 ends on DAY0: still in role
    assert con[(DAY0 + timedelta(days=1), "A3")]["champions"] == 0
    assert con[(DAY0, "A3")]["champion_departed_90d"] == 1  # K2, not K3
    assert con[(DAY0, "A3")]["economic_buyer_present"] == 0
    assert con[(DAY0 + timedelta(days=1), "A3")]["economic_buyer_present"] == 1
    assert con[(DAY0, "A4")]["executive_sponsor_present"] == 0  # ended the day before
    _, tree = family_values(tables, "hierarchy", [DAY0, DAY0 + timedelta(days=1)])
    assert (DAY0, "A7") not in tree  # created at DAY0: not yet known
    assert tree[(DAY0, "A8")]["parent_arr"] == Decimal("0.02")  # 12 x 0.00125, half up
    assert tree[(DAY0, "A8")]["sibling_arr"] == Decimal("0.00")  # its parent's only child
    # S82 was cancelled at DAY0's midnight: in force at DAY0, not the day after
    assert tree[(DAY0 + timedelta(days=1), "A7")]["children_arr"] == Decimal("-0.02")
    assert tree[(DAY0 + timedelta(days=1), "A7")]["child_accounts"] == 1
    assert tree[(DAY0, "A9")]["has_parent"] == 1 and tree[(DAY0, "A9")]["parent_arr"] == 0


def test_every_day_around_the_boundaries_equals_its_single_date_snapshot():
    tables = RawTables.from_frames(boundary_book())
    dates = around(DAY0, 3, 3) + around(DAY0 + timedelta(days=90), 1, 1)
    grid = dict(build_grid(tables, dates, workers=1))
    assert list(grid) == dates
    for day in dates:
        single = build_snapshot(tables, day)
        assert grid[day].schema == single.schema and grid[day].equals(single), day


def test_a_grid_in_chunks_equals_the_single_dates(monkeypatch):
    from features import grid_assembly

    monkeypatch.setattr(grid_assembly, "CHUNK_ROWS", 4)  # a chunk per date or two
    tables = RawTables.from_frames(boundary_book())
    dates = around(DAY0, 4, 4)
    grid = dict(build_grid(tables, dates, workers=1))
    for day in dates:
        assert grid[day].equals(build_snapshot(tables, day)), day


MOMENTS = st.integers(-200, 10).map(
    lambda h: datetime.combine(DAY0, datetime.min.time()) + timedelta(hours=12 * h)
    + timedelta(microseconds=(h % 3) - 1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    activities=st.lists(st.tuples(st.sampled_from(["A1", "A3", "A4", None]), MOMENTS,
                                  st.sampled_from(["qbr", "call", "onboarding session", None])),
                        max_size=25),
    contacts=st.lists(st.tuples(st.sampled_from(["A1", "A3"]),
                                st.sampled_from(["champion", "detractor", "economic buyer",
                                                 "executive sponsor", "user", None]),
                                st.integers(-120, 5), st.one_of(st.none(), st.integers(-120, 5))),
                      max_size=15),
)
def test_the_numpy_forms_equal_the_sql_for_any_rows(activities, contacts):
    """For all activity and contact rows near the dates: the same values per date and account
    (hierarchy's on the fixture's accounts and terms)."""
    book = frames()
    book["activities"] = pd.DataFrame(activities, columns=book["activities"].columns,
                                      dtype=object).astype({"occurred_at": "datetime64[us]"})
    book["contacts"] = pd.DataFrame(
        [(f"K{i}", a, r, DAY0 + timedelta(days=s), None if e is None else
          DAY0 + timedelta(days=e)) for i, (a, r, s, e) in enumerate(contacts)],
        columns=book["contacts"].columns, dtype=object)
    tables = RawTables.from_frames(book)
    dates = [DAY0 - timedelta(days=d) for d in (91, 90, 30, 1, 0)] + [DAY0 + timedelta(days=1)]
    for name in ("activities", "contacts", "hierarchy"):
        sql, numpy = family_values(tables, name, dates)
        assert numpy == sql, name


def test_a_grid_left_early_leaves_no_table_behind(monkeypatch):
    from features import grid_assembly

    monkeypatch.setattr(grid_assembly, "CHUNK_ROWS", 4)  # the next chunk's queries are pending
    tables = RawTables.from_frames(boundary_book())
    count = "SELECT COUNT(*) FROM duckdb_tables()"
    before = tables.con.execute(count).fetchall()
    grid = build_grid(tables, around(DAY0, 3, 3), workers=1)
    next(grid)
    grid.close()
    assert tables.con.execute(count).fetchall() == before


def test_a_one_date_grid_is_its_snapshot():
    tables = RawTables.from_frames(boundary_book())
    assert dict(build_grid(tables, [DAY0]))[DAY0].equals(build_snapshot(tables, DAY0))
