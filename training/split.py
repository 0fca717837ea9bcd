"""Time-based splits of the snapshot grid: train on earlier dates, validate and test on later ones.

Never random over (account, as_of) rows: the same account appears at many dates. A label at T
reads ``[T, T + H)``, so consecutive groups are kept at least H apart
(``last_train + H <= first_validation``, ``last_validation + H <= first_test``): no label window
of an earlier group overlaps a later group's, and nothing a model is fitted on happened after
the start of what it is judged on.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise

import pandas as pd


@dataclass(frozen=True)
class TimeSplit:
    """Snapshot dates per role; ``gap_days``: the smallest distance between consecutive groups."""

    train: list[date]
    validation: list[date]
    test: list[date]
    gap_days: int


def time_split(
    dates: list[date], horizon_days: int, validation: int = 1, test: int = 1
) -> TimeSplit:
    """The latest ``test`` dates for test, the latest ``validation`` dates at least H before
    them for validation, and every date at least H before those for training.

    Taking the latest dates that keep the gap keeps the training set as large as possible.
    ``validation=0`` gives a train/test split. ``ValueError`` when the dates cannot hold it.
    """
    _check_sizes(horizon_days, validation, test)
    days = _days(dates)
    horizon = timedelta(days=horizon_days)
    test_dates = days[-test:] if len(days) >= test else []
    val_dates: list[date] = []
    if validation and test_dates:
        before_test = [d for d in days if d + horizon <= test_dates[0]]
        val_dates = before_test[-validation:] if len(before_test) >= validation else []
    boundary = (val_dates or test_dates or [None])[0]
    train = [d for d in days if boundary is not None and d + horizon <= boundary]
    if not test_dates or (validation and not val_dates) or not train:
        raise ValueError(_too_few(days, horizon_days, validation, test))
    groups = [g for g in (train, val_dates, test_dates) if g]
    gap = min((later[0] - earlier[-1]).days for earlier, later in pairwise(groups))
    return TimeSplit(train=train, validation=val_dates, test=test_dates, gap_days=gap)


def rolling_backtest(
    dates: list[date],
    horizon_days: int,
    n_cutoffs: int = 3,
    validation: int = 1,
    test: int = 1,
    step: int | None = None,
) -> list[TimeSplit]:
    """``n_cutoffs`` expanding-window splits, oldest first, whose training really grows.

    The last split uses every date. Each earlier one ends at least ``step`` dates (default
    ``test``; less would overlap the test blocks) before the next, and further back, one date at a
    time, until its training ends strictly before the next one's. Stepping by a fixed number
    of dates is not enough: on a monthly grid with a 90-day horizon a month can be 28 to 31
    days, so two neighbouring cut-offs can need the same last training date.
    """
    if n_cutoffs < 1:
        raise ValueError(f"n_cutoffs must be at least 1, got {n_cutoffs}")
    step = test if step is None else step
    if step < test:
        raise ValueError(f"step must be at least the {test} test date(s), so that test blocks "
                         f"do not overlap; got {step}")
    days = _days(dates)
    splits: list[TimeSplit] = []
    end = len(days)
    for back in range(n_cutoffs):
        while True:
            try:
                split = time_split(days[: max(end, 0)], horizon_days, validation, test)
            except ValueError as exc:
                raise ValueError(
                    f"rolling_backtest with {n_cutoffs} cut-offs at least {step} date(s) apart, "
                    f"each training on more dates than the one before: the cut-off {back} "
                    f"before the last keeps only {max(end, 0)} of {len(days)} dates, too few: "
                    f"{exc}"
                ) from exc
            if not splits or split.train[-1] < splits[-1].train[-1]:
                break
            end -= 1
        splits.append(split)
        end -= step
    return splits[::-1]


def _check_sizes(horizon_days: int, validation: int, test: int) -> None:
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    if validation < 0 or test < 1:
        raise ValueError(f"need validation >= 0 and test >= 1, got {validation} and {test}")


def _days(dates: list[date]) -> list[date]:
    return sorted({pd.Timestamp(d).date() for d in dates})


def _too_few(days: list[date], horizon_days: int, validation: int, test: int) -> str:
    """Say what a split needs: the count, the span, and the count at this grid's spacing."""
    gaps = 2 if validation else 1
    least = 1 + validation + test
    need = (
        f"time_split needs at least {least} snapshot dates (1 train, {validation} validation, "
        f"{test} test) spanning at least {gaps * horizon_days} days, each group starting "
        f"{horizon_days} days (the horizon) or more after the previous one"
    )
    if len(days) >= 2:
        step = statistics.median((b - a).days for a, b in pairwise(days))
        skipped = max(math.ceil(horizon_days / step) - 1, 0)
        need += f"; at this grid's spacing of ~{step:g} days that is about {least + gaps * skipped}"
    got = f"{days[0]} to {days[-1]}" if days else "none"
    return f"{need}; got {len(days)} dates ({got})"
