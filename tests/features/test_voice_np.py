"""Voice's numpy grid form (features.voice_np) gives, for every date and account, the values of
the family's single-date SQL, to the bit; the grid built with it gives every date its
single-date snapshot; answers it does not cover send the family to SQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import families_np
from features.build import build_grid, build_snapshot
from features.sources import RawTables
from tests.features.feature_fixture import frames
from tests.features.test_families_np import DAY0, GROUPS, around, family_values

T = pd.Timestamp
NPS_COLUMNS = ["account_id", "contact_id", "responded_at", "score"]


def with_answers(book: dict[str, pd.DataFrame], answers: list[tuple], replace: bool = False
                 ) -> dict:
    """``book`` with NPS answers (account, instant, score) added (or instead of its own)."""
    rows = pd.DataFrame([(a, None, at, s) for a, at, s in answers], columns=NPS_COLUMNS
                        ).astype({"responded_at": "datetime64[us]"})
    book["nps_responses"] = rows if replace else pd.concat(
        [book["nps_responses"], rows], ignore_index=True).astype({"responded_at": "datetime64[us]"})
    return book


def boundary_answers() -> list[tuple]:
    at = T(DAY0)
    micro = pd.Timedelta(microseconds=1)
    day = pd.Timedelta(days=1)
    return [
        ("A1", at, 0),  # known from DAY0 + 1 only
        ("A1", at - micro, 9),  # the latest at DAY0
        ("A1", at - 180 * day, 4),  # in the 180 days (at -180 days)
        ("A1", at - 180 * day - micro, 10),  # in the 180 days before those
        ("A1", at - 360 * day, 2),  # the prior window's first instant
        ("A1", at - 360 * day - micro, 1),  # outside both windows
        ("A3", at - 10 * day, 8), ("A3", at - 10 * day, 3),  # one instant: the lower is latest
        ("A3", at - 10 * day, 5),
        ("A4", at - 400 * day, 6),  # only long ago: a row, no averages, a detractor
    ]


def test_voice_in_numpy_equals_its_sql_on_the_boundaries():
    tables = RawTables.from_frames(with_answers(frames(), boundary_answers(), replace=True))
    dates = around(DAY0, 2, 2) + around(DAY0 + timedelta(days=180), 1, 1) + around(
        DAY0 + timedelta(days=360), 1, 1)
    sql, numpy = family_values(tables, "voice", dates)
    assert numpy == sql
    a1, a1_next = numpy[(DAY0, "A1")], numpy[(DAY0 + timedelta(days=1), "A1")]
    assert a1["nps_last"] == 9.0 and a1["detractor_flag"] == 0
    assert a1["nps_responses_180d"] == 2 and a1["nps_180d"] == (9 + 4) / 2
    assert a1["nps_trend_180d"] == (9 + 4) / 2 - (10 + 2) / 2
    assert a1["nps_detractors_180d"] == 1
    assert a1_next["nps_last"] == 0.0 and a1_next["detractor_flag"] == 1
    assert numpy[(DAY0, "A3")]["nps_last"] == 3.0  # of three answers at one instant
    a4 = numpy[(DAY0, "A4")]
    assert a4["nps_180d"] is None and a4["nps_trend_180d"] is None
    assert a4["nps_responses_180d"] == 0 and a4["detractor_flag"] == 1
    assert (DAY0 - timedelta(days=401), "A4") not in numpy


def test_every_day_around_the_boundaries_equals_its_single_date_snapshot():
    tables = RawTables.from_frames(with_answers(frames(), boundary_answers()))
    assert families_np.applies(tables.con, GROUPS["voice"], {})
    dates = around(DAY0, 2, 2) + around(DAY0 + timedelta(days=180), 1, 1)
    grid = dict(build_grid(tables, dates, workers=1))
    for day in dates:
        assert grid[day].equals(build_snapshot(tables, day)), day


def test_a_null_score_sends_voice_to_sql():
    book = frames()
    book["nps_responses"] = book["nps_responses"].astype({"score": "object"})
    book["nps_responses"].loc[0, "score"] = None  # the contract forbids it; the SQL copes
    tables = RawTables.from_frames(book)
    assert tables.con.sql("SELECT COUNT(*) FROM nps_responses WHERE score IS NULL"
                          ).fetchall() == [(1,)]
    assert not families_np.applies(tables.con, GROUPS["voice"], {})
    dates = around(DAY0, 1, 1)
    grid = dict(build_grid(tables, dates, workers=1))
    for day in dates:
        assert grid[day].equals(build_snapshot(tables, day)), day


MOMENTS = st.integers(-760, 10).map(
    lambda h: datetime.combine(DAY0, datetime.min.time()) + timedelta(hours=12 * h)
    + timedelta(microseconds=(h % 3) - 1))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers=st.lists(st.tuples(st.sampled_from(["A1", "A3", "A4", None]), MOMENTS,
                                  st.integers(0, 10)), max_size=30))
def test_voice_in_numpy_equals_its_sql_for_any_answers(answers):
    """For all answers near the dates' windows (at and around midnight, several at one
    instant, an unknown account): the same values per date and account."""
    tables = RawTables.from_frames(with_answers(frames(), answers, replace=True))
    dates = [DAY0 - timedelta(days=d) for d in (361, 360, 181, 180, 1, 0)] + [
        DAY0 + timedelta(days=1)]
    sql, numpy = family_values(tables, "voice", dates)
    assert numpy == sql
