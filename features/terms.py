"""When a contract term is in force (SQL, and numpy for grids): one rule for features, labels, KPIs.

A term covers ``[start_date, end_date)``. "In force at T" means in force on the last day before
T, using only what is known before T:

- the term is known: ``start_date < T``;
- a fixed term (``end_date`` set) runs to its end: ``end_date >= T``. Notice given
  (``cancelled_at``) does not end it early; it only means it will not renew;
- an open-ended term (``end_date`` null) stops when cancelled, if that was known before T.

So a renewal that starts on T, the day the previous term ends, keeps the account active at T,
and a cancellation stamped at or after T is invisible at T.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from features.contract import BILLING_PERIOD_MONTHS

if TYPE_CHECKING:
    import numpy as np


def in_force(at: str, alias: str = "s") -> str:
    """SQL predicate: term ``alias`` of ``subscriptions`` is in force at the timestamp ``at``.

    ``at`` is any SQL expression of DATE or TIMESTAMP type (a column, a parameter, a literal).
    """
    a = f"{alias}." if alias else ""
    return (
        f"({a}start_date < {at} AND CASE WHEN {a}end_date IS NOT NULL "
        f"THEN {a}end_date >= {at} "
        f"ELSE ({a}cancelled_at IS NULL OR {a}cancelled_at >= {at}) END)"
    )


def in_force_until(alias: str = "s") -> str:
    """SQL: the last instant term ``alias`` is in force, as a TIMESTAMP (``infinity`` for an
    open-ended term never cancelled). The same rule as :func:`in_force`, as an interval: the
    term is in force at T exactly when ``start_date < T <= in_force_until``, which lets a grid
    range-join its dates to the terms in force at each."""
    a = f"{alias}." if alias else ""
    return (f"CASE WHEN {a}end_date IS NOT NULL THEN CAST({a}end_date AS TIMESTAMP) "
            f"ELSE COALESCE({a}cancelled_at, TIMESTAMP 'infinity') END")


def in_force_days(start: np.ndarray, end: np.ndarray, has_end: np.ndarray,
                  cancelled: np.ndarray, t: int) -> np.ndarray:
    """The same rule as :func:`in_force` over arrays of day numbers, for numpy forms of a grid
    (``features.families_np``): term known (``start < t``), then a fixed term runs to its end,
    an open-ended one until cancelled (``cancelled``: the cancellation's day, a null one after
    every date). Exact at midnight boundaries, the only ones a snapshot date has."""
    import numpy as np

    return (start < t) & np.where(has_end, end >= t, cancelled >= t)


def notice_given(at: str, alias: str = "s") -> str:
    """SQL predicate: a fixed term in force at ``at`` whose customer gave notice before ``at``."""
    a = f"{alias}." if alias else ""
    return f"({a}end_date IS NOT NULL AND {a}cancelled_at < {at})"


def billing_months(alias: str = "s") -> str:
    """SQL: the length in months of a term's billing period (documented names without case,
    or a whole number of months); null when the period is neither."""
    a = f"{alias}." if alias else ""
    named = " ".join(f"WHEN '{name}' THEN {n}" for name, n in BILLING_PERIOD_MONTHS.items())
    value = f"TRIM({a}billing_period)"
    return (f"CASE LOWER({value}) {named} ELSE CASE WHEN TRY_CAST({value} AS INTEGER) > 0 "
            f"THEN TRY_CAST({value} AS INTEGER) END END")
