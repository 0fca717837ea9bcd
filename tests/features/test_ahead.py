"""Work read ahead on a cursor in a thread (``features.ahead``): its result, or None where the
cursor cannot do it, for the caller to redo on the connection; and every date's accounts read
ahead (``grid_assembly.accounts_ahead``) equal to the read on the connection."""

from __future__ import annotations

import threading

import pandas as pd

from features import ahead, grid_assembly
from features.sources import RawTables, connect
from tests.features.test_grid_one_pass import edge_case_book
from tests.features.test_usage_grid_reductions import DATES, on_cursors


def test_the_work_runs_on_a_cursor_in_its_named_thread():
    con = connect()
    con.execute("CREATE TABLE t AS SELECT range AS x FROM range(5)")
    seen = []
    wait = ahead.on_cursor(con, lambda cursor: seen.append(
        (cursor is not con, threading.current_thread().name))
        or cursor.execute("SELECT sum(x) FROM t").fetchone()[0], "reader")
    assert wait() == 10 and seen == [(True, "reader")]


def test_work_the_cursor_cannot_do_gives_none():
    con = connect()
    con.register("frame", pd.DataFrame({"x": [1]}))  # invisible to cursors
    assert con.execute("SELECT count(*) FROM frame").fetchone()[0] == 1
    assert ahead.on_cursor(con, lambda c: c.execute("SELECT * FROM frame").fetchall(), "r")() \
        is None
    assert ahead.on_cursor(con, lambda c: 1 / 0, "r")() is None  # any error: redone by the caller


def test_the_accounts_read_ahead_are_those_read_on_the_connection():
    tables = on_cursors(edge_case_book())
    early = grid_assembly.accounts_ahead(tables.con, DATES)()
    assert early is not None and early.num_rows > 0
    assert early.equals(grid_assembly._base(tables.con, DATES))
    frames = RawTables.from_frames(edge_case_book())
    assert grid_assembly.accounts_ahead(frames.con, DATES)() is None
