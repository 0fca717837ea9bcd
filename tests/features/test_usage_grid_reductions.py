"""The usage one pass's reductions appended span by span on two cursors at once
(``usage_grid._at_once``): the same rows as one query per table, every grid date equal to its
single-date snapshot, and nothing left behind when a span fails."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pandas as pd
import pytest

from features import usage_grid
from features.catalogue import FeatureSpec
from features.families.usage import UsageWindows
from features.sources import RawTables, connect
from tests.features.feature_fixture import AS_OF
from tests.features.test_grid_one_pass import assert_grid_equals_single_dates, edge_case_book

DATES = [AS_OF - timedelta(days=d) for d in (200, 120, 90, 45, 30, 7, 1, 0)]


def on_cursors(book: dict[str, pd.DataFrame]) -> RawTables:
    """The book's frames copied into tables of the database, which its cursors see (frames
    registered on a connection are invisible to its cursors, and the reductions then run one
    query per table on the connection)."""
    con = connect()
    for name, frame in book.items():
        con.register("_frame", frame)
        con.execute(f'CREATE TABLE "_db_{name}" AS SELECT * FROM _frame')
        con.unregister("_frame")
    tables = RawTables.from_frames(book, con=con)
    for name in book:
        con.execute(f'CREATE OR REPLACE VIEW "src_{name}" AS SELECT * FROM "_db_{name}"')
    return tables


def grid_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [row[0] for row in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '_grid_usage_%'"
    ).fetchall()]


def test_the_spans_are_taken_in_turn_across_the_tables():
    assert usage_grid._interleaved([("a", ["a1", "a2", "a3"]), ("b", ["b1"]), ("c", [])]) == [
        ("a", "a1"), ("b", "b1"), ("a", "a2"), ("a", "a3")]


def test_the_edge_case_book_reduced_span_by_span_on_cursors_equals_its_single_dates(
        monkeypatch):
    tables = on_cursors(edge_case_book())
    ran: list[int] = []
    run_all = usage_grid._run_all
    monkeypatch.setattr(usage_grid, "_run_all",
                        lambda con, statements, workers: ran.append(len(statements))
                        or run_all(con, statements, workers))
    assert_grid_equals_single_dates(tables, DATES, workers=2)
    assert len(ran) == 1 and ran[0] > 2  # the volumes' and users' spans, on cursors
    assert grid_tables(tables.con) == []


def test_the_spans_appended_at_once_hold_the_rows_of_one_query_per_table():
    tables = on_cursors(edge_case_book())
    con, plan = tables.con, UsageWindows.of(FeatureSpec())
    reduced = usage_grid._Reduced.of(con, plan, DATES, "_grid_usage_test")
    origin = usage_grid._origin(DATES, plan)
    _, probes = usage_grid._probes(DATES, origin)
    since = DATES[0] - timedelta(days=60)
    one_query = {
        reduced.daily: usage_grid._volumes_sql(plan, usage_grid._bounds(DATES, plan, origin),
                                               origin),
        reduced.users: usage_grid._last_days_sql("user_id", since, DATES[-1], "", origin,
                                                 probes),
    }
    for table, spans in one_query.items():
        assert len(spans) > 1
        got = con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
        want = con.execute(f"SELECT * FROM ({usage_grid._union(spans)}) ORDER BY ALL").fetchall()
        assert got == want and len(got) > 10
    reduced.drop(con)
    assert grid_tables(con) == []


def test_a_span_that_fails_leaves_no_table_behind(monkeypatch):
    tables = on_cursors(edge_case_book())
    last_days = usage_grid._last_days_sql

    def with_a_bad_span(*args):
        spans = last_days(*args)
        return spans + [spans[-1].replace("MAX(", "MAX(no_such_column + ", 1)]

    monkeypatch.setattr(usage_grid, "_last_days_sql", with_a_bad_span)
    with pytest.raises(duckdb.BinderException, match="no_such_column"):
        usage_grid.prepare(tables.con, UsageWindows.of(FeatureSpec()), DATES)
    assert grid_tables(tables.con) == []
    assert tables.con.execute("SELECT current_setting('threads')").fetchone()[0] > 1


def test_after_a_failure_no_other_statement_starts_and_the_failure_is_raised():
    con = duckdb.connect()
    con.execute("CREATE TABLE log (i INTEGER)")
    with pytest.raises(duckdb.BinderException, match="no_such_column"):
        usage_grid._run_all(con, ["INSERT INTO log VALUES (1)", "SELECT no_such_column",
                                  "INSERT INTO log VALUES (2)"], workers=1)
    assert con.execute("SELECT i FROM log").fetchall() == [(1,)]


def test_every_statement_runs_once_on_two_cursors():
    con = duckdb.connect()
    con.execute("CREATE TABLE log (i INTEGER)")
    usage_grid._run_all(con, [f"INSERT INTO log VALUES ({i})" for i in range(20)], workers=2)
    assert con.execute("SELECT i FROM log ORDER BY i").fetchall() == [(i,) for i in range(20)]
