"""Snapshot dates of a grid: every day, every week (on a chosen weekday), every month (its
first day), or every N days from the start."""

from __future__ import annotations

import re
from datetime import date, timedelta

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EVERY_HELP = "day, week, month (the 1st) or 'N days' (from --from, e.g. '14 days')"


def step_days(every: str) -> int | None:
    """Days between grid dates for ``day``, ``week`` and ``N days`` (None: monthly); raises
    ``ValueError`` for anything else."""
    text = every.strip().lower()
    if text in ("day", "daily"):
        return 1
    if text in ("week", "weekly"):
        return 7
    if text in ("month", "monthly"):
        return None
    match = re.fullmatch(r"(\d+)\s*(d|days?)", text)
    if match and int(match.group(1)) > 0:
        return int(match.group(1))
    raise ValueError(f"--every {every!r}: choose {EVERY_HELP}")


def grid_dates(start: date, end: date, every: str = "month", week_start: str = "mon"
               ) -> list[date]:
    """The grid's dates from ``start`` to ``end`` inclusive; weekly dates fall on
    ``week_start`` (mon ... sun). Raises ``ValueError`` naming a bad option."""
    if week_start.lower()[:3] not in WEEKDAYS:
        raise ValueError(f"--week-start {week_start!r}: choose one of {', '.join(WEEKDAYS)}")
    step = step_days(every)
    if step is None:
        from features.build import month_starts

        return month_starts(start, end)
    first = start
    if every.strip().lower() in ("week", "weekly"):
        first += timedelta(days=(WEEKDAYS.index(week_start.lower()[:3]) - start.weekday()) % 7)
    count = (end - first).days // step + 1 if first <= end else 0
    return [first + timedelta(days=i * step) for i in range(count)]
