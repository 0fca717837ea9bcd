"""A grid's snapshots assembled in a thread ahead of the caller (``build._ahead``): the same
items in order, at most about a chunk's rows ahead, a failure raised after the items before
it, and the assembly closed and its thread ended whenever the caller stops."""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta

import pyarrow as pa
import pytest

from features.build import _ahead

DAY = date(2025, 1, 1)


def items(n: int, rows: int, log: list[str], fail_at: int | None = None):
    try:
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"item {i}")
            log.append(f"made {i}")
            yield DAY + timedelta(days=i), pa.table({"x": list(range(rows))})
    finally:
        log.append(f"closed in {threading.current_thread().name}")


def ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "grid-ahead"]


def test_every_item_comes_in_order():
    log: list[str] = []
    got = list(_ahead(items(7, 3, log), rows=5))
    assert [day for day, _ in got] == [DAY + timedelta(days=i) for i in range(7)]
    assert all(table.num_rows == 3 for _, table in got)
    assert log[-1] == "closed in grid-ahead" and ahead_threads() == []


def test_the_thread_runs_at_most_about_the_rows_ahead():
    log: list[str] = []
    seen = []
    for i, _ in enumerate(_ahead(items(12, 4, log), rows=10)):
        time.sleep(0.02)  # room for the thread to run ahead as far as it may
        made = sum(entry.startswith("made") for entry in log)
        seen.append(made - (i + 1))
    # two items of 4 rows waiting (a third would pass 10 rows) and one made, not yet queued
    assert max(seen) <= 3 and seen[-1] == 0


def test_a_failure_comes_after_the_items_before_it():
    log: list[str] = []
    got = []
    with pytest.raises(ValueError, match="item 3"):
        for day, _ in _ahead(items(6, 2, log, fail_at=3), rows=100):
            got.append(day)
    assert got == [DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)]
    assert log[-1] == "closed in grid-ahead" and ahead_threads() == []


def test_a_caller_that_stops_early_closes_the_items_and_ends_the_thread():
    log: list[str] = []
    grid = _ahead(items(50, 2, log), rows=4)
    next(grid)
    grid.close()
    assert log[-1] == "closed in grid-ahead"
    assert ahead_threads() == []
    assert sum(entry.startswith("made") for entry in log) < 50
