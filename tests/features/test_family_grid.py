"""The families other than usage for every date of a grid in one query each
(features.family_grid): each date's rows are exactly the single-date query's, and a grid built
this way gives every date its single-date snapshot byte for byte."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pyarrow as pa
import pytest

from features import family_grid
from features.build import build_grid, build_snapshot, feature_groups
from features.catalogue import ACCOUNT_ID, AS_OF, Cutoff, FeatureGroup, FeatureSpec, GridCutoff
from features.grid import grid_dates
from features.sources import RawTables
from features.validation import load_tables
from simulator.generator import generate
from tests.features.feature_fixture import AS_OF as FIXTURE_AS_OF
from tests.features.raw_fixture import valid_frames
from tests.features.test_grid_one_pass import edge_case_book


def _sorted(con, sql: str) -> pa.Table:
    return con.sql(f"SELECT * FROM ({sql}) ORDER BY {ACCOUNT_ID}").to_arrow_table()


def assert_families_equal_per_date(tables: RawTables, dates: list[date],
                                   spec: FeatureSpec | None = None) -> int:
    """Every family's grid rows of each date equal its own query's, accounts outside the
    snapshot's base included; returns how many rows were compared."""
    con = tables.con
    groups = [g for g in feature_groups(spec) if g.cte is not None and g.name != "usage"
              and all(src in tables.present for src in g.source.split("+"))]
    grid = family_grid.prepare(con, groups, dates)
    compared = 0
    try:
        for g in groups:
            for day in dates:
                single = _sorted(con, g.cte(Cutoff(day)))
                got = _sorted(con, grid.group(g).cte(Cutoff(day)))  # type: ignore[misc]
                assert got.schema == single.schema, (g.name, day)
                assert got.equals(single), (g.name, day)
                compared += single.num_rows
    finally:
        grid.drop(con)
    return compared


def _tables_of(con) -> set[str]:
    return {row[0] for row in con.execute("SHOW TABLES").fetchall()}


def test_grid_sql_keys_each_row_by_its_date():
    groups = {g.name: g for g in feature_groups()}
    sql = groups["voice"].cte(GridCutoff("dates_t"))  # type: ignore[misc]
    assert "CROSS JOIN dates_t g" in sql and f"GROUP BY g.{AS_OF}, n.account_id" in sql
    assert "(g.as_of - INTERVAL 180 DAY)" in sql and "TIMESTAMP '" not in sql
    single = groups["voice"].cte(Cutoff(date(2025, 1, 1)))  # type: ignore[misc]
    assert AS_OF not in single and "CROSS JOIN" not in single  # the hooks render nothing


def test_every_family_of_the_edge_case_book_on_every_day():
    tables = RawTables.from_frames(edge_case_book())
    dates = [FIXTURE_AS_OF - timedelta(days=400) + timedelta(days=i) for i in range(0, 420, 3)]
    assert assert_families_equal_per_date(tables, dates) > 500


def test_the_customer_score_family_and_its_grid():
    tables = RawTables.from_frames(valid_frames())
    spec = FeatureSpec(customer_score=True)
    dates = [date(2024, 11, 1) + timedelta(days=i) for i in range(0, 92, 7)]
    assert assert_families_equal_per_date(tables, dates, spec) > 0
    grid = dict(build_grid(tables, dates, spec, workers=1, one_query=True))
    for day in dates:
        assert grid[day].equals(build_snapshot(tables, day, spec)), day
    assert grid[date(2025, 1, 3)].column("customer_health_score_age_days").to_pylist() != \
        [None] * grid[date(2025, 1, 3)].num_rows  # the family is not vacuous


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> RawTables:
    root = tmp_path_factory.mktemp("book")
    generate(150, 14, 7, date(2024, 1, 1), root / "raw", root / "truth")
    return load_tables(root / "raw")


def test_every_family_of_a_generated_book_on_every_month(generated):
    dates = grid_dates(date(2024, 2, 1), date(2025, 3, 1), "month")
    assert assert_families_equal_per_date(generated, dates) > 5000


@pytest.mark.parametrize("workers", [1, 2])
def test_a_monthly_grid_with_usage_per_date_equals_the_single_dates(generated, workers):
    dates = grid_dates(date(2024, 2, 1), date(2025, 3, 1), "month")
    before = _tables_of(generated.con)
    grid = dict(build_grid(generated, dates, workers=workers, one_pass=False, one_query=True))
    assert list(grid) == dates
    for day in dates:
        single = build_snapshot(generated, day)
        assert grid[day].schema == single.schema and grid[day].equals(single), day
        assert grid[day].num_rows > 0
    assert _tables_of(generated.con) == before  # the grid's tables are dropped


def test_a_failing_family_leaves_no_table_behind(generated):
    before = _tables_of(generated.con)
    bad = FeatureGroup("broken", "x", "accounts", (),
                       lambda s: "SELECT no_such_column FROM accounts")
    good = [g for g in feature_groups() if g.name == "account"]
    with pytest.raises(Exception, match="no_such_column"):
        family_grid.prepare(generated.con, [*good, bad], [date(2024, 6, 1), date(2024, 7, 1)])
    assert _tables_of(generated.con) == before


@pytest.mark.parametrize(("every", "expected"), [("week", True), ("month", False)])
def test_by_default_only_heavily_overlapping_grids_use_one_query_per_family(
        generated, monkeypatch, every, expected):
    """Weekly dates (each day in about 26 of the 180-day windows) take the one-query path;
    monthly ones (about 6) stay per date, where it measured slower."""
    calls = []
    real = family_grid.prepare
    monkeypatch.setattr(family_grid, "prepare",
                        lambda con, groups, dates: calls.append(dates) or real(con, groups, dates))
    dates = grid_dates(date(2024, 9, 2), date(2025, 2, 24), every)
    grid = dict(build_grid(generated, dates, workers=1, one_pass=False))
    assert bool(calls) is expected and list(grid) == dates


def boundary_book() -> dict[str, pd.DataFrame]:
    """The valid fixture with the cases the grid forms of revenue and voice handle apart:
    two NPS answers at one instant (the lower one is the latest), an answer at midnight
    (unseen at that date), a renewal starting on its predecessor's end date, an open-ended term
    cancelled at midnight, and two terms of equal MRR (the plan ranks them)."""
    book = valid_frames()
    nps = pd.DataFrame({
        "account_id": ["A2", "A2", "A2"], "contact_id": [None, None, None],
        "responded_at": pd.to_datetime(["2024-10-01 12:00:00", "2024-10-01 12:00:00",
                                        "2024-10-03 00:00:00"]),
        "score": pd.Series([8, 5, 10], dtype="int64")})
    subs = pd.DataFrame({
        "subscription_id": ["S5", "S6", "S7"], "account_id": ["A2", "A2", "A2"],
        "product": ["core", "core", "api"], "plan": ["pro", "basic", "advanced"],
        "seats": pd.Series([3, 4, 2], dtype="int64"), "mrr": [300.0, 300.0, 300.0],
        "start_date": pd.to_datetime(["2024-09-01", "2024-10-01", "2024-10-01"]).date,
        "end_date": [date(2024, 10, 1), None, None],
        "cancelled_at": pd.to_datetime([None, "2024-10-20 00:00:00", None]),
        "billing_period": ["annual", "monthly", "monthly"], "auto_renew": [False, True, True],
        "discount_pct": [0.0, 10.0, 0.0]})
    for name, extra in (("nps_responses", nps), ("subscriptions", subs)):
        book[name] = pd.concat([book[name], extra[book[name].columns]], ignore_index=True)
    return book


def test_the_grid_forms_on_their_boundaries_equal_the_single_dates():
    tables = RawTables.from_frames(boundary_book())
    dates = [date(2024, 9, 20) + timedelta(days=i) for i in range(33)]  # to 2024-10-22
    assert assert_families_equal_per_date(tables, dates) > 500
    grid = dict(build_grid(tables, dates, workers=1, one_query=True))
    rows = {day: grid[day].to_pandas().set_index(ACCOUNT_ID).loc["A2"]
            for day in (date(2024, 10, 1), date(2024, 10, 2), date(2024, 10, 3),
                        date(2024, 10, 4), date(2024, 10, 20), date(2024, 10, 21))}
    assert rows[date(2024, 10, 2)]["nps_last"] == 5.0  # of the two at one instant, the lower
    assert rows[date(2024, 10, 3)]["nps_last"] == 5.0  # the midnight answer is not yet known
    assert rows[date(2024, 10, 4)]["nps_last"] == 10.0
    assert rows[date(2024, 10, 4)]["nps_responses_180d"] == 3
    assert rows[date(2024, 10, 1)]["plan_tier"] == "pro"  # S5 in force through its end date
    assert rows[date(2024, 10, 2)]["plan_tier"] == "advanced"  # S6 = S7 in MRR: by plan
    # S3 (200, cancelled 2024-10-15 10:00) with S6 and S7 (300 each)
    assert rows[date(2024, 10, 2)]["mrr"] == 800.0 and rows[date(2024, 10, 2)]["seats"] == 11
    assert rows[date(2024, 10, 20)]["mrr"] == 600.0  # S6 cancelled at midnight: in force at T
    assert rows[date(2024, 10, 21)]["mrr"] == 300.0
    assert rows[date(2024, 10, 21)]["mrr_change_30d"] == -200.0  # 2024-09-21: S3 + S5
