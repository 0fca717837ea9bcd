"""Time-based splits: exact splits on small grids, and no overlap of label windows, always."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import combinations, pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.split import TimeSplit, rolling_backtest, time_split


def months(first: date, n: int) -> list[date]:
    out, y, m = [], first.year, first.month
    for _ in range(n):
        out.append(date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def test_monthly_grid_of_2024():
    split = time_split(months(date(2024, 1, 1), 12), 90)
    # 2024-06-01 + 90 = 2024-08-30 <= 2024-09-01; 2024-07-01 + 90 = 2024-09-29 is too late
    assert split == TimeSplit(
        train=months(date(2024, 1, 1), 6),
        validation=[date(2024, 9, 1)],
        test=[date(2024, 12, 1)],
        gap_days=91,  # 2024-09-01 -> 2024-12-01 (2024-06-01 -> 2024-09-01 is 92)
    )


def test_february_to_may_is_short_of_90_days():
    split = time_split(months(date(2023, 1, 1), 8), 90)
    # validation 2023-05-01; 2023-02-01 + 90 = 2023-05-02: February may not train
    assert split.train == [date(2023, 1, 1)]
    assert split.validation == [date(2023, 5, 1)]
    assert split.test == [date(2023, 8, 1)]
    assert split.gap_days == 92


def test_weekly_grid_with_two_validation_and_two_test_dates():
    weeks = [date(2024, 1, 1) + timedelta(weeks=i) for i in range(12)]
    split = time_split(weeks, 28, validation=2, test=2)
    assert split.train == [date(2024, 1, 1), date(2024, 1, 8)]
    assert split.validation == [date(2024, 2, 5), date(2024, 2, 12)]
    assert split.test == [date(2024, 3, 11), date(2024, 3, 18)]
    assert split.gap_days == 28


def test_train_test_only():
    split = time_split(months(date(2024, 1, 1), 6), 90, validation=0)
    assert split.train == months(date(2024, 1, 1), 3)  # 2024-03-01 + 90 = 2024-05-30
    assert (split.validation, split.test, split.gap_days) == ([], [date(2024, 6, 1)], 92)


def test_unsorted_and_repeated_dates_are_fine():
    grid = months(date(2024, 1, 1), 12)
    assert time_split(grid[::-1] + grid[:3], 90) == time_split(grid, 90)


def test_too_few_dates_says_how_many():
    with pytest.raises(ValueError) as err:
        time_split(months(date(2024, 1, 1), 6), 90)
    message = str(err.value)
    assert "needs at least 3 snapshot dates" in message
    assert "spanning at least 180 days" in message
    assert "about 7" in message  # monthly: 2 dates skipped before validation and before test
    assert "got 6 dates (2024-01-01 to 2024-06-01)" in message
    with pytest.raises(ValueError, match="got 0 dates"):
        time_split([], 90)
    assert len(time_split(months(date(2024, 1, 1), 7), 90).train) == 1  # 7 is enough


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"test": 0}, "test >= 1"), ({"validation": -1}, "validation >= 0"),
    ({"horizon_days": 0}, "horizon_days must be positive"),
])
def test_bad_sizes(kwargs, match):
    args = {"dates": months(date(2024, 1, 1), 12), "horizon_days": 90, **kwargs}
    with pytest.raises(ValueError, match=match):
        time_split(**args)


def check_split(split: TimeSplit, days: list[date], horizon: int, validation: int, test: int):
    h = timedelta(days=horizon)
    groups = [split.train, split.validation, split.test]
    assert all(g == sorted(g) for g in groups)
    assert len(split.validation) == validation and len(split.test) == test and split.train
    assert not set(split.train) & set(split.validation) | set(split.validation) & set(split.test)
    assert set(split.train) | set(split.validation) | set(split.test) <= set(days)
    assert split.test == days[-test:]
    later = split.validation or split.test
    assert split.train[-1] + h <= later[0]  # no label window of training reaches later dates
    assert split.train == [d for d in days if d + h <= later[0]]  # and none left out
    if split.validation:
        assert split.validation[-1] + h <= split.test[0]
    assert split.gap_days >= horizon


def split_exists(days: list[date], horizon: int, validation: int, test: int) -> bool:
    """Brute force: any validation set and a training date that keep both gaps."""
    if len(days) < test + validation + 1:
        return False
    h, first_test = timedelta(days=horizon), days[-test]
    for chosen in combinations(days[:-test], validation):
        boundary = chosen[0] if chosen else first_test
        if chosen and chosen[-1] + h > first_test:
            continue
        if any(d + h <= boundary for d in days if d < boundary):
            return True
    return False


offsets = st.lists(st.integers(0, 900), max_size=12, unique=True)


@settings(max_examples=300, deadline=None)
@given(
    offsets=offsets, horizon=st.integers(1, 200),
    validation=st.integers(0, 2), test=st.integers(1, 2),
)
def test_split_keeps_the_gap_or_says_no_split_exists(offsets, horizon, validation, test):
    days = sorted(date(2023, 1, 1) + timedelta(days=o) for o in offsets)
    try:
        split = time_split(days, horizon, validation, test)
    except ValueError as exc:
        assert "needs at least" in str(exc)
        assert not split_exists(days, horizon, validation, test)
        return
    check_split(split, days, horizon, validation, test)


def test_rolling_backtest_on_two_monthly_years():
    grid = months(date(2023, 1, 1), 24)
    splits = rolling_backtest(grid, 90, n_cutoffs=3)
    assert [s.test for s in splits] == [[date(2024, 10, 1)], [date(2024, 11, 1)],
                                        [date(2024, 12, 1)]]
    assert [s.validation for s in splits] == [[date(2024, 7, 1)], [date(2024, 8, 1)],
                                              [date(2024, 9, 1)]]
    assert [s.train[-1] for s in splits] == [date(2024, 4, 1), date(2024, 5, 1),
                                             date(2024, 6, 1)]
    assert all(s.train[0] == date(2023, 1, 1) for s in splits)  # training expands
    assert splits[-1] == time_split(grid, 90)
    wider = rolling_backtest(grid, 90, n_cutoffs=2, test=2, step=3)
    assert [s.test for s in wider] == [grid[-5:-3], grid[-2:]]


def test_backtest_cutoffs_of_the_demo_grid_train_on_more_dates():
    """The issue's case: monthly snapshots 2024-02 .. 2025-05, 90 days, 2 validation dates.
    Stepping one date back gave test 2025-04-01 with the same validation and training as test
    2025-05-01 (2024-12-01 + 90 = 2025-03-01 <= 2025-04-01 but 2025-01-01 + 90 > 2025-04-01 is
    not so for May). The earlier cut-off now moves back until its training ends earlier."""
    grid = months(date(2024, 2, 1), 16)
    first, last = rolling_backtest(grid, 90, n_cutoffs=2, validation=2, test=1)
    assert (last.train[-1], last.validation, last.test) == (
        date(2024, 9, 1), [date(2024, 12, 1), date(2025, 1, 1)], [date(2025, 5, 1)])
    assert (first.train[-1], first.validation, first.test) == (
        date(2024, 8, 1), [date(2024, 11, 1), date(2024, 12, 1)], [date(2025, 3, 1)])


def grid_of(spacing: str, n: int) -> list[date]:
    """Snapshot grids of the shapes users have: daily, weekly, fortnightly, calendar months,
    quarters, and irregular (a month with gaps)."""
    first = date(2023, 1, 1)
    if spacing == "monthly":
        return months(first, n)
    if spacing == "quarterly":
        return months(first, 3 * n)[::3]
    if spacing == "irregular":
        return [d for i, d in enumerate(months(first, n + n // 3)) if i % 4 != 2][:n]
    return [first + timedelta(days=int(spacing) * i) for i in range(n)]


@settings(max_examples=400, deadline=None)
@given(spacing=st.sampled_from(["1", "7", "14", "30", "monthly", "quarterly", "irregular"]),
       n_dates=st.integers(3, 40), horizon=st.integers(1, 200), n_cutoffs=st.integers(1, 5),
       validation=st.integers(0, 2), test=st.integers(1, 2), extra=st.integers(0, 2))
def test_every_cutoff_trains_on_more_dates_than_the_one_before(
        spacing, n_dates, horizon, n_cutoffs, validation, test, extra):
    days, step = grid_of(spacing, n_dates), test + extra
    try:
        splits = rolling_backtest(days, horizon, n_cutoffs, validation, test, step=step)
    except ValueError as exc:
        assert "rolling_backtest" in str(exc) and "needs at least" in str(exc)
        return
    assert len(splits) == n_cutoffs
    assert splits[-1] == time_split(days, horizon, validation, test)
    for s in splits:
        check_split(s, [d for d in days if d <= s.test[-1]], horizon, validation, test)
    for earlier, later in pairwise(splits):
        assert earlier.train[-1] < later.train[-1]  # the training set strictly grows
        assert earlier.train[0] == later.train[0]
        assert earlier.test[-1] < later.test[0]
        assert days.index(later.test[-1]) - days.index(earlier.test[-1]) >= step


@settings(max_examples=150, deadline=None)
@given(offsets=offsets, horizon=st.integers(1, 120), n_cutoffs=st.integers(1, 4),
       step=st.integers(1, 3))
def test_rolling_cutoffs_move_forward_and_keep_the_gap(offsets, horizon, n_cutoffs, step):
    days = sorted(date(2023, 1, 1) + timedelta(days=o) for o in offsets)
    try:
        splits = rolling_backtest(days, horizon, n_cutoffs, step=step)
    except ValueError as exc:
        assert "rolling_backtest" in str(exc) and "needs at least" in str(exc)
        return
    assert len(splits) == n_cutoffs
    for s in splits:
        check_split(s, [d for d in days if d <= s.test[-1]], horizon, 1, 1)
    for earlier, later in pairwise(splits):
        assert earlier.test[-1] < later.test[0]
        assert earlier.validation[0] < later.validation[0]
        assert earlier.train[-1] < later.train[-1]


def test_rolling_backtest_too_few_dates():
    with pytest.raises(ValueError, match="3 cut-offs at least 1 date\\(s\\) apart.*the cut-off 1 "
                                         "before the last keeps only 6 of 7"):
        rolling_backtest(months(date(2024, 1, 1), 7), 90, n_cutoffs=3)
    with pytest.raises(ValueError, match="n_cutoffs must be at least 1"):
        rolling_backtest(months(date(2024, 1, 1), 7), 90, n_cutoffs=0)
    with pytest.raises(ValueError, match="step must be at least the 2 test date"):
        rolling_backtest(months(date(2024, 1, 1), 30), 90, n_cutoffs=2, test=2, step=1)
