"""Grid dates of any frequency."""

from __future__ import annotations

from datetime import date

import pytest

from features.grid import grid_dates


def test_daily_weekly_monthly_and_n_days():
    start, end = date(2025, 1, 1), date(2025, 1, 20)  # 2025-01-01 is a Wednesday
    assert grid_dates(start, date(2025, 1, 3), "day") == [
        date(2025, 1, 1), date(2025, 1, 2), date(2025, 1, 3)]
    assert grid_dates(start, end, "week") == [date(2025, 1, 6), date(2025, 1, 13),
                                              date(2025, 1, 20)]
    assert grid_dates(start, end, "week", week_start="wed") == [
        date(2025, 1, 1), date(2025, 1, 8), date(2025, 1, 15)]
    assert grid_dates(start, end, "week", week_start="sun") == [date(2025, 1, 5),
                                                                date(2025, 1, 12),
                                                                date(2025, 1, 19)]
    assert grid_dates(start, end, "10 days") == [date(2025, 1, 1), date(2025, 1, 11)]
    assert grid_dates(date(2024, 12, 2), date(2025, 3, 1), "month") == [
        date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)]


@pytest.mark.parametrize(("every", "week_start", "message"), [
    ("fortnight", "mon", "--every 'fortnight': choose day, week, month"),
    ("0 days", "mon", "--every '0 days'"),
    ("week", "someday", "--week-start 'someday': choose one of mon, tue"),
])
def test_bad_options_name_themselves(every, week_start, message):
    with pytest.raises(ValueError, match=message):
        grid_dates(date(2025, 1, 1), date(2025, 2, 1), every, week_start)
