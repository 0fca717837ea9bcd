"""Labels: what happened to each account in the window ``[as_of, as_of + horizon)``.

They are data rules over the raw tables, so they live in the bottom layer: training builds its
datasets from them (``training.labels`` keeps its names) and serving's monitor computes the
realised outcome of past score runs with the same rules.

The population at ``as_of`` is exactly that of a feature snapshot: every account with a contract
term in force at ``as_of`` (``features.terms.in_force``). ARR at a moment is 12 x the MRR of the
terms in force then, so a label reads only the state at ``as_of``, the state at the horizon and
the terms started inside the window; nothing else before ``as_of`` and nothing at or after the
horizon can move it.

- churn: ARR > 0 at as_of and ARR = 0 at the horizon (every line ended, none renewed). With
  ``renewal_only`` only accounts whose next fixed-term end falls in the window are kept.
- upsell: ARR at the horizon >= ARR at as_of x (1 + min_growth), or the account starts a term of
  a product it did not hold at as_of (a cross-sell counts as an upsell).
- cross-sell: adopts ``product`` (a term of it starts in the window) given it did not hold it
  at as_of; with ``product=None`` one row per (account, product not held) pair.

``value`` is the ARR at stake of a positive label (0 for a negative): the churned ARR, the
expansion ARR, or the adopted product's ARR. It weights the revenue-capture metric.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pandas as pd

from features.catalogue import AS_OF, Cutoff
from features.sources import RawTables
from features.terms import in_force

TASKS = ("churn", "upsell", "cross-sell")
LABEL = "label"
VALUE = "value"
ARR_AT_AS_OF = "arr_at_as_of"
ARR_AT_HORIZON = "arr_at_horizon"
PRODUCT = "product"
RENEWAL_DUE = "renewal_due"


def extraction_time(tables: RawTables) -> datetime | None:
    """When the data were exported; without a manifest, the latest moment the terms record."""
    if tables.extracted_at is not None:
        stamp = pd.Timestamp(tables.extracted_at)
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        return stamp.to_pydatetime()
    latest = tables.con.execute(
        "SELECT GREATEST(MAX(CAST(start_date AS TIMESTAMP)), MAX(cancelled_at)) FROM subscriptions"
    ).fetchone()[0]
    return None if latest is None else pd.Timestamp(latest).to_pydatetime()


def horizon_date(as_of: date, horizon_days: int) -> date:
    return as_of + timedelta(days=horizon_days)


def label_window_observed(tables: RawTables, as_of: date, horizon_days: int) -> bool:
    """The whole window ``[as_of, as_of + H)`` lies before the extraction time."""
    extracted = extraction_time(tables)
    end = datetime.combine(horizon_date(_day(as_of), horizon_days), time())
    return extracted is not None and end <= extracted


def make_labels(
    task: str,
    tables: RawTables,
    as_of: date,
    horizon_days: int = 90,
    *,
    min_growth: float = 0.10,
    renewal_only: bool = False,
    product: str | None = None,
) -> pd.DataFrame:
    """One row per account in force at ``as_of`` (per candidate product for cross-sell).

    Columns: ``account_id``, ``as_of``, ``label`` (0/1), ``arr_at_as_of``, ``arr_at_horizon``,
    ``value``; plus ``product`` for cross-sell and ``renewal_due`` for churn with
    ``renewal_only``. Raises ``ValueError`` on an unknown task, a flag that does not apply to
    the task, or a window the data do not fully cover.
    """
    as_of = _day(as_of)
    _check_arguments(task, horizon_days, min_growth, renewal_only, product)
    _check_observed(task, tables, as_of, horizon_days)
    window = Cutoff(as_of), Cutoff(horizon_date(as_of, horizon_days))
    if task == "churn":
        query = churn_sql(*window, renewal_only)
    elif task == "upsell":
        query = upsell_sql(*window, min_growth)
    else:
        query = cross_sell_sql(*window, product)
    frame = tables.sql(query)
    frame.insert(1, AS_OF, as_of)
    frame[LABEL] = frame[LABEL].astype("int64")
    if renewal_only:
        frame[RENEWAL_DUE] = frame[RENEWAL_DUE].astype(bool)
    return frame.reset_index(drop=True)


# --- checks ---------------------------------------------------------------------------------
def _day(value: date) -> date:
    stamp = pd.Timestamp(value)
    if stamp != stamp.normalize():
        raise ValueError(f"as_of must be a date (midnight), got {value}")
    return stamp.date()


def _check_arguments(
    task: str, horizon_days: int, min_growth: float, renewal_only: bool, product: str | None
) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: expected one of {', '.join(TASKS)}")
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    if min_growth < 0:
        raise ValueError(f"min_growth must be >= 0, got {min_growth}")
    if renewal_only and task != "churn":
        raise ValueError(f"renewal_only applies to task 'churn', not {task!r}")
    if product is not None and task != "cross-sell":
        raise ValueError(f"product applies to task 'cross-sell', not {task!r}")


def _check_observed(task: str, tables: RawTables, as_of: date, horizon_days: int) -> None:
    if not label_window_observed(tables, as_of, horizon_days):
        extracted = extraction_time(tables)
        raise ValueError(
            f"{task} labels at as_of {as_of} need the window up to "
            f"{horizon_date(as_of, horizon_days)} ({horizon_days} days), but the data were "
            f"extracted at {extracted if extracted is not None else 'an unknown time (no terms)'}"
            ": this snapshot can only be scored, not labelled"
        )


# --- SQL ------------------------------------------------------------------------------------
def _window_ctes(t: Cutoff, e: Cutoff) -> str:
    """Per account: ARR at as_of and at the horizon, next renewal; per (account, product):
    held at as_of, ARR at the horizon, and the ARR of a product adopted inside the window."""
    at, end = t.ts(), e.ts()
    return f"""
account_arr AS (
  SELECT s.account_id,
    ROUND(12 * SUM(CASE WHEN {in_force(at)} THEN s.mrr ELSE 0 END), 2) AS {ARR_AT_AS_OF},
    ROUND(12 * SUM(CASE WHEN {in_force(end)} THEN s.mrr ELSE 0 END), 2) AS {ARR_AT_HORIZON},
    MIN(CASE WHEN {in_force(at)} THEN s.end_date END) AS next_renewal
  FROM subscriptions s
  GROUP BY s.account_id
  HAVING COUNT(CASE WHEN {in_force(at)} THEN 1 END) > 0
),
account_product AS (
  SELECT s.account_id, s.product,
    COUNT(CASE WHEN {in_force(at)} THEN 1 END) > 0 AS held,
    ROUND(12 * SUM(CASE WHEN {in_force(end)} THEN s.mrr ELSE 0 END), 2) AS arr_at_end,
    MIN(CASE WHEN s.start_date >= {t.day()} AND s.start_date < {e.day()}
      THEN s.start_date END) AS first_start
  FROM subscriptions s
  GROUP BY s.account_id, s.product
),
adopted AS (
  SELECT p.account_id, p.product,
    CASE WHEN MAX(p.arr_at_end) > 0 THEN MAX(p.arr_at_end)
      ELSE ROUND(12 * SUM(s.mrr), 2) END AS adopted_arr
  FROM account_product p
  JOIN subscriptions s
    ON s.account_id = p.account_id AND s.product = p.product AND s.start_date = p.first_start
  WHERE NOT p.held
  GROUP BY p.account_id, p.product
)"""


def churn_sql(t: Cutoff, e: Cutoff, renewal_only: bool = False) -> str:
    due = f"(a.next_renewal IS NOT NULL AND a.next_renewal < {e.day()})"
    churned = f"(a.{ARR_AT_AS_OF} > 0 AND a.{ARR_AT_HORIZON} = 0)"
    extra = f", {due} AS {RENEWAL_DUE}" if renewal_only else ""
    where = f"WHERE {due}" if renewal_only else ""
    return f"""WITH {_window_ctes(t, e)}
SELECT a.account_id, CASE WHEN {churned} THEN 1 ELSE 0 END AS {LABEL},
  a.{ARR_AT_AS_OF}, a.{ARR_AT_HORIZON},
  CASE WHEN {churned} THEN a.{ARR_AT_AS_OF} ELSE 0 END AS {VALUE}{extra}
FROM account_arr a
{where}
ORDER BY a.account_id"""


def upsell_sql(t: Cutoff, e: Cutoff, min_growth: float = 0.10) -> str:
    grew = (
        f"(a.{ARR_AT_HORIZON} > a.{ARR_AT_AS_OF} AND "
        f"a.{ARR_AT_HORIZON} >= ROUND(a.{ARR_AT_AS_OF} * {1 + float(min_growth)!r}, 2))"
    )
    upsold = f"({grew} OR n.new_arr IS NOT NULL)"
    return f"""WITH {_window_ctes(t, e)},
new_product AS (SELECT account_id, SUM(adopted_arr) AS new_arr FROM adopted GROUP BY account_id)
SELECT a.account_id, CASE WHEN {upsold} THEN 1 ELSE 0 END AS {LABEL},
  a.{ARR_AT_AS_OF}, a.{ARR_AT_HORIZON},
  CASE WHEN {upsold} THEN GREATEST(ROUND(a.{ARR_AT_HORIZON} - a.{ARR_AT_AS_OF}, 2),
    COALESCE(n.new_arr, 0)) ELSE 0 END AS {VALUE}
FROM account_arr a
LEFT JOIN new_product n ON n.account_id = a.account_id
ORDER BY a.account_id"""


def cross_sell_sql(t: Cutoff, e: Cutoff, product: str | None = None) -> str:
    """Candidates: ``product``, or every product with a term started before the horizon."""
    if product is None:
        candidates = f"SELECT DISTINCT product FROM subscriptions WHERE start_date < {e.day()}"
    else:
        candidates = f"SELECT {_sql_string(product)} AS product"
    return f"""WITH {_window_ctes(t, e)},
candidate AS ({candidates})
SELECT a.account_id, c.product AS {PRODUCT},
  CASE WHEN d.account_id IS NOT NULL THEN 1 ELSE 0 END AS {LABEL},
  a.{ARR_AT_AS_OF}, a.{ARR_AT_HORIZON}, COALESCE(d.adopted_arr, 0) AS {VALUE}
FROM account_arr a
CROSS JOIN candidate c
LEFT JOIN account_product p ON p.account_id = a.account_id AND p.product = c.product
LEFT JOIN adopted d ON d.account_id = a.account_id AND d.product = c.product
WHERE NOT COALESCE(p.held, FALSE)
ORDER BY a.account_id, c.product"""


def _sql_string(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"

