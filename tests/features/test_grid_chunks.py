"""A grid's dates split into chunks (``grid_assembly._chunks``): every date once and in order,
no chunk above ``CHUNK_ROWS`` unless one date is, chunks of about equal rows, and a small last
chunk (``LAST_CHUNK_ROWS``), whose writing the caller does with nothing left to overlap it."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from features import grid_assembly


def days(n: int) -> list[date]:
    return [date(2025, 1, 1) + timedelta(days=i) for i in range(n)]


def sizes(counts: list[int], chunk: int, last: int, monkeypatch) -> list[list[int]]:
    monkeypatch.setattr(grid_assembly, "CHUNK_ROWS", chunk)
    monkeypatch.setattr(grid_assembly, "LAST_CHUNK_ROWS", last)
    dates = days(len(counts))
    rows = dict(zip(dates, counts, strict=True))
    return [[rows[d] for d in c] for c in grid_assembly._chunks(dates, counts)]


@pytest.mark.parametrize(("counts", "chunk", "last", "expected"), [
    ([3, 3, 3, 3, 3], 7, 1, [[3, 3], [3, 3], [3]]),     # the last date alone
    ([2, 2, 1, 1], 5, 2, [[2, 2], [1, 1]]),             # as many last dates as fit
    ([1, 1, 1, 1, 5], 6, 2, [[1, 1, 1, 1], [5]]),       # one date even above the limit
    ([2, 2, 2], 6, 1, [[2, 2, 2]]),                     # one chunk: no split
    ([10], 5, 1, [[10]]),                               # a date above a whole chunk
    ([10, 10], 5, 1, [[10], [10]]),
    # 30,000 accounts x 24 monthly: even halves, not 19 dates and a leftover one
    ([21] * 24, 400, 100, [[21] * 10, [21] * 10, [21] * 4]),
    ([1, 1, 1, 1, 1, 1, 9, 1], 8, 1, [[1, 1, 1, 1, 1, 1], [9], [1]]),  # a share above the limit
])
def test_the_chunks_of_hand_made_counts(counts, chunk, last, expected, monkeypatch):
    assert sizes(counts, chunk, last, monkeypatch) == expected


@given(counts=st.lists(st.integers(0, 20), min_size=1, max_size=30),
       chunk=st.integers(1, 60), last=st.integers(0, 30))
def test_every_date_once_in_chunks_within_their_limits(counts, chunk, last):
    with pytest.MonkeyPatch.context() as patch:
        chunks = sizes(counts, chunk, last, patch)
    assert [n for c in chunks for n in c] == counts  # every date once, in order
    assert all(c for c in chunks)
    assert all(sum(c) <= chunk or len(c) == 1 for c in chunks)
    if sum(counts) <= chunk:
        assert len(chunks) == 1
    else:
        assert sum(chunks[-1]) <= last or len(chunks[-1]) == 1
