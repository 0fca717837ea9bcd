"""A grid's one pass over the usage events (features.usage_grid), with the other families in one
query each (features.family_grid), gives every date exactly the snapshot that date's own query
gives."""

from __future__ import annotations

import zlib
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.build import (
    USAGE_ONE_PASS_MIN_OVERLAP,
    build_grid,
    build_snapshot,
    uses_one_pass,
)
from features.grid import grid_dates
from features.sources import RawTables
from features.validation import load_tables
from simulator.generator import generate
from tests.features.feature_fixture import AS_OF, frames
from tests.features.test_point_in_time import AS_OF as LEAK_AS_OF
from tests.features.test_point_in_time import random_book, rewrite_future

T = pd.Timestamp


def assert_grid_equals_single_dates(tables: RawTables, dates: list[date], workers: int = 2
                                    ) -> None:
    grid = dict(build_grid(tables, dates, workers=workers, one_pass=True, one_query=True))
    assert list(grid) == dates
    for day in dates:
        single = build_snapshot(tables, day)
        assert grid[day].schema == single.schema, day
        assert grid[day].equals(single), day
        assert grid[day].num_rows > 0


def edge_case_book() -> dict[str, pd.DataFrame]:
    """The hand-made book, with usage rows on the windows' edges: runs of activity days whose
    gaps are exactly a window (7, 30, 90 days) or one day more, events at midnight, several
    events of a user on one day, a NULL user, zero quantities (no activity), an undeclared
    event type and a NULL one."""
    book = frames()
    start = T(AS_OF) - pd.Timedelta(days=200)
    rows = []
    for offset in (0, 7, 15, 45, 46, 136, 137, 140, 147, 177, 207):
        rows.append(("A4", "u9", start + pd.Timedelta(days=offset), "login", 1))
    rows += [
        ("A4", "u8", start + pd.Timedelta(days=100, hours=23, minutes=59), "export", 2),
        ("A4", "u8", start + pd.Timedelta(days=100, hours=1), "export", 3),
        ("A4", "u8", start + pd.Timedelta(days=190), "api_call", 0),  # no event
        ("A4", None, start + pd.Timedelta(days=170), "login", 1),
        ("A4", "u7", start + pd.Timedelta(days=160), "webhook", 4),
        ("A4", "u7", start + pd.Timedelta(days=185), "webhook", 1),
        ("A4", "u7", start + pd.Timedelta(days=189), "sso", 1),
        ("A4", "u7", start + pd.Timedelta(days=150), None, 5),
        ("A1", "u5", T(AS_OF) + pd.Timedelta(days=20), "login", 9),
    ]
    extra = pd.DataFrame(rows, columns=list(book["usage_events"].columns))
    book["usage_events"] = pd.concat([book["usage_events"], extra], ignore_index=True)
    return book


def test_every_day_of_the_edge_case_book_equals_its_single_date_snapshot():
    tables = RawTables.from_frames(edge_case_book())
    dates = [AS_OF - timedelta(days=150) + timedelta(days=i) for i in range(150)]
    assert_grid_equals_single_dates(tables, dates, workers=1)  # frames: one connection


def test_the_edge_case_book_in_parts_computed_at_once_equals_its_single_dates(monkeypatch):
    """Parts of the accounts (ranges of their sorted ids, more parts than accounts: some
    empty) computed two at a time on cursors, with events of an account that has no
    subscription (the snapshots have no row for it), give each date's own snapshot."""
    from features import usage_grid

    book = edge_case_book()
    stray = pd.DataFrame([("A0", "u1", T(AS_OF) - pd.Timedelta(days=d), "login", 2)
                          for d in (3, 40, 100)], columns=list(book["usage_events"].columns))
    book["usage_events"] = pd.concat([book["usage_events"], stray], ignore_index=True)
    tables = RawTables.from_frames(book)
    monkeypatch.setattr(usage_grid, "PART_ROWS", 3)
    monkeypatch.setattr(usage_grid, "PARALLEL_MIN_ROWS", 1)
    seen = []
    table = usage_grid.usage_table
    monkeypatch.setattr(usage_grid, "usage_table", lambda *a: seen.append(a[-2:]) or table(*a))
    dates = [AS_OF - timedelta(days=d) for d in (90, 45, 30, 7, 1, 0)]
    assert_grid_equals_single_dates(tables, dates, workers=1)
    parts = seen[0][0]
    assert parts > 6 and sorted(seen) == [(parts, i) for i in range(parts)]


def test_a_part_that_fails_leaves_no_table_behind(monkeypatch):
    from features import usage_grid
    from features.catalogue import FeatureSpec
    from features.families.usage import UsageWindows

    tables = RawTables.from_frames(edge_case_book())
    monkeypatch.setattr(usage_grid, "PART_ROWS", 3)
    table = usage_grid.usage_table

    def failing(con, plan, dates, reduced, parts=1, part=0):
        if part == 2:
            raise MemoryError("part 2")
        return table(con, plan, dates, reduced, parts, part)

    monkeypatch.setattr(usage_grid, "usage_table", failing)
    with pytest.raises(MemoryError, match="part 2"):
        usage_grid.prepare(tables.con, UsageWindows.of(FeatureSpec()),
                           [AS_OF - timedelta(days=30), AS_OF])
    left = tables.con.execute("SELECT table_name FROM duckdb_tables() "
                              "WHERE table_name LIKE '_grid_usage_%'").fetchall()
    assert left == []


def test_the_edge_cases_are_counted():
    """The one pass is not vacuous: the edge rows move the values the equality compares."""
    tables = RawTables.from_frames(edge_case_book())
    day = date(2025, 6, 20)  # 'start' + 189 days; A4 is a customer again since June 15
    row = dict(build_grid(tables, [day - timedelta(days=1), day], workers=1,
                          one_pass=True))[day].to_pandas().set_index("account_id").loc["A4"]
    # days after 'start': u9 136, 137, 140, 147, 177; u8 100 (twice); NULL user 170; u7 150
    # (NULL type), 160 and 185 (webhook, undeclared); u7's 'sso' on 189 is not yet known
    assert row["events_7d"] == 1  # [182, 189): u7 on 185
    assert row["events_30d"] == 7  # [159, 189): 4 + 1 + 1 + 1
    assert row["active_users_7d"] == 1
    assert row["active_users_30d"] == 3  # u7, NULL, u9
    assert row["active_users_90d"] == 4  # [99, 189): and u8
    assert row["active_users_change_30d"] == 3 - 2  # [129, 159): u9 and u7
    assert row["feature_breadth_30d"] == 2  # login and webhook; not the NULL type
    assert row["days_since_last_event"] == 4


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> RawTables:
    root = tmp_path_factory.mktemp("book")
    generate(120, 10, 42, date(2024, 1, 1), root / "raw", root / "truth")
    return load_tables(root / "raw")


@pytest.mark.parametrize("every", ["month", "week"])
def test_every_date_of_a_generated_grid_equals_its_single_date_snapshot(generated, every):
    dates = grid_dates(date(2024, 2, 1), date(2024, 10, 31), every)
    assert_grid_equals_single_dates(generated, dates)


def test_a_grid_in_parts_of_the_accounts_equals_the_single_dates(generated, monkeypatch):
    from features import usage_grid

    monkeypatch.setattr(usage_grid, "PART_ROWS", 5_000)  # 5 parts of its ~21,000 events
    assert_grid_equals_single_dates(generated, grid_dates(date(2024, 5, 1), date(2024, 10, 31),
                                                          "month"))


def test_a_monthly_grid_computes_its_usage_in_one_pass_by_default(tmp_path, monkeypatch):
    from features import usage_grid

    generate(40, 14, 7, date(2024, 1, 1), tmp_path / "raw", tmp_path / "truth")
    tables = load_tables(tmp_path / "raw")
    calls = []
    prepare = usage_grid.prepare
    monkeypatch.setattr(usage_grid, "prepare", lambda *a: calls.append(a[2]) or prepare(*a))
    dates = grid_dates(date(2024, 2, 1), date(2025, 1, 1), "month")  # each day in 4.2 windows
    grid = dict(build_grid(tables, dates))
    assert calls == [dates]
    for day in dates[::5]:
        assert grid[day].equals(build_snapshot(tables, day))


def test_one_pass_when_the_dates_windows_overlap_enough():
    monthly = grid_dates(date(2024, 2, 1), date(2026, 1, 1), "month")
    weekly = grid_dates(date(2025, 1, 1), date(2025, 12, 1), "week")
    assert uses_one_pass(weekly, 180)  # each day of the span in 17 dates' windows
    assert not uses_one_pass(monthly, 180)  # in 5: per date is as fast
    assert uses_one_pass(grid_dates(date(2025, 1, 1), date(2025, 12, 1), "14 days"), 180)
    assert not uses_one_pass([date(2025, 1, 1)], 180)


def test_the_usage_one_pass_takes_monthly_grids_too():
    monthly = grid_dates(date(2024, 2, 1), date(2026, 1, 1), "month")
    quarterly = grid_dates(date(2024, 2, 1), date(2026, 1, 1), "91 days")
    assert uses_one_pass(monthly, 180, USAGE_ONE_PASS_MIN_OVERLAP)  # each day in 5 windows
    assert not uses_one_pass(quarterly, 180, USAGE_ONE_PASS_MIN_OVERLAP)  # in 1.7
    assert not uses_one_pass(monthly[:2], 180, USAGE_ONE_PASS_MIN_OVERLAP)


def grid_snapshot(book: dict[str, pd.DataFrame]) -> pa.Table:
    tables = RawTables.from_frames(book)
    grid = dict(build_grid(tables, [LEAK_AS_OF - timedelta(days=30), LEAK_AS_OF], workers=1,
                           one_pass=True, one_query=True))
    assert grid[LEAK_AS_OF].equals(build_snapshot(tables, LEAK_AS_OF))
    return grid[LEAK_AS_OF]


@pytest.mark.slow  # 60 grids of generated books: ~30 s
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    book_seed=st.integers(0, 2**32 - 1),
    future_seed=st.integers(0, 2**32 - 1),
    n_accounts=st.integers(1, 5),
)
def test_grid_features_ignore_everything_at_or_after_as_of(book_seed, future_seed, n_accounts):
    """tests/features/test_point_in_time.py's property, on the grid path (usage in one pass,
    the other families in one query each)."""
    book = random_book(np.random.default_rng(book_seed), n_accounts)
    rewritten = rewrite_future(book, np.random.default_rng(future_seed))
    assert grid_snapshot(book).equals(grid_snapshot(rewritten))


def last_days(rows: list[tuple[int, str | None, int]], probes: list[int]):
    """``_LastDays`` of active (account, entity, day) rows, reduced as ``_last_days_sql`` does."""
    from features.usage_grid import _LastDays

    frame = pd.DataFrame(rows, columns=["a", "entity", "day"])
    frame["probe"] = np.searchsorted(probes, frame["day"], side="right")
    reduced = frame.groupby(["a", "entity", "probe"], dropna=False, as_index=False)["day"].max()
    reduced["h"] = pd.array([zlib.crc32(str(e).encode()) << 32 for e in reduced["entity"]],
                            dtype="uint64")  # a hash, as DuckDB's hash(entity)
    return _LastDays.of(pa.Table.from_pandas(reduced.rename(columns={"day": "last"}),
                                             preserve_index=False))


def test_covering_counts_the_entities_active_in_each_window():
    from features.usage_grid import _covering

    probes = np.array([10, 20, 30])
    # account 0: u1 on days 5 and 25, u2 on day 31 (after every probe); account 1: u1 on 19
    active = last_days([(0, "u1", 5), (0, "u1", 25), (0, "u2", 31), (1, "u1", 19)],
                       probes.tolist())
    assert _covering(active, 7, 2, probes).tolist() == [[1, 0, 1], [0, 1, 0]]
    assert _covering(active, 30, 2, probes).tolist() == [[1, 1, 1], [0, 1, 1]]
    assert _covering(active, 1, 2, probes).tolist() == [[0, 0, 0], [0, 1, 0]]  # [19, 20): 19


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["u1", "u2", None]),
                            st.integers(0, 120)), max_size=40),
    probes=st.lists(st.integers(1, 130), min_size=1, max_size=8, unique=True).map(sorted),
    w=st.sampled_from([1, 7, 30, 90]),
)
def test_covering_equals_counting_each_window(rows, probes, w):
    """For all active days, probe days and windows: the count of entities with a day in
    [X - w, X), entity by entity (a NULL entity is one entity, as in SQL's GROUP BY)."""
    from features.usage_grid import _covering

    got = _covering(last_days(rows, probes), w, 4, np.array(probes))
    for account in range(4):
        for j, x in enumerate(probes):
            entities = {e for a, e, d in rows if a == account and x - w <= d < x}
            assert got[account, j] == len(entities), (account, x)


@pytest.fixture(scope="module")
def dense(tmp_path_factory) -> RawTables:
    """A generated book with denser usage: several sessions a day, stamped in office hours."""
    from simulator.signals import UsageDensity

    root = tmp_path_factory.mktemp("dense")
    generate(40, 8, 5, date(2024, 1, 1), root / "raw", root / "truth", UsageDensity(6.0, 2.5))
    return load_tables(root / "raw")


def test_every_date_of_a_dense_weekly_grid_equals_its_single_date_snapshot(dense):
    assert_grid_equals_single_dates(dense, grid_dates(date(2024, 3, 1), date(2024, 8, 31),
                                                      "week"))
