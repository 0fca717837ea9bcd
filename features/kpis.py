"""Account KPIs per calendar month: MRR/ARR, logo and revenue churn, retention, renewals, CLV.

Everything is computed in DuckDB SQL over the typed ``accounts`` and ``subscriptions`` views; only
the small result (one row per month and group) reaches pandas. The MRR of an account at a date is
the sum of ``mrr`` over its terms in force there, by the rule of :mod:`features.terms` that
features and labels share, so a KPI and a label never disagree on who was a customer.

Month ``m`` covers ``[m_start, next_m_start)``. All rates are **monthly** figures:

- ``logo_churn_rate`` = churned_accounts / accounts_start (accounts with MRR > 0 at m_start that
  have MRR 0 at next_m_start).
- Per account, the change ``mrr_end - mrr_start`` is exactly one movement: ``new_mrr`` (from 0),
  ``churned_mrr`` (to 0), ``expansion_mrr`` (up) or ``contraction_mrr`` (down), so
  ``mrr_start + new + expansion - contraction - churned == mrr_end``. A reactivated account
  (0 at m_start, > 0 at next_m_start) counts as new.
- ``revenue_churn_rate`` = (churned_mrr + contraction_mrr) / mrr_start;
  ``gross_revenue_retention`` = 1 - revenue_churn_rate;
  ``net_revenue_retention`` = (mrr_start - churned - contraction + expansion) / mrr_start.
  New MRR is excluded from both retentions: they describe the customers present at m_start.
- ``terms_due``: fixed terms whose end_date falls in the month (and before the extraction time);
  ``terms_renewed``: those whose account has a term of the same product in force at
  end_date + 1 day; ``renewal_rate`` = renewed / due.
- ``clv`` = (12 * mrr_start / accounts_start) * gross_margin / annual churn, with annual churn
  = 1 - (1 - logo_churn_rate) ** 12. It uses the ARR per account of the same cohort that the
  churn rate is measured on (the accounts active at m_start). It is null when the month saw no
  churn (the formula would be infinite) or had no active accounts.
- ``logo_churn_rate_ttm`` pools the trailing twelve months (this month and the eleven before it,
  read even when they precede ``start``): sum of churned accounts / sum of accounts_start.
  A single month of a small segment swings between 0 and large values; the pooled rate does
  not, so ``clv_ttm`` (the CLV formula with it) is the figure to report.

Rates and CLVs are null (``pd.NA``), never NaN or inf, when their denominator is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd

from features.sources import RawTables
from features.terms import in_force

#: The allowed ``--by`` values; ``month`` is always part of the grouping.
KPI_GROUPINGS = ("month", "segment", "owner")

#: Trailing window, in months, of the pooled churn rate behind ``clv_ttm``.
TTM_MONTHS = 12

ADDITIVE_COLUMNS = (
    "mrr_start", "mrr_end", "arr_end", "accounts_start", "new_accounts", "churned_accounts",
    "new_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr", "terms_due", "terms_renewed",
)
RATE_COLUMNS = (
    "logo_churn_rate", "revenue_churn_rate", "gross_revenue_retention", "net_revenue_retention",
    "renewal_rate", "clv", "logo_churn_rate_ttm", "clv_ttm",
)
KPI_COLUMNS = (
    "mrr_start", "mrr_end", "arr_end",
    "accounts_start", "new_accounts", "churned_accounts", "logo_churn_rate",
    "new_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr",
    "revenue_churn_rate", "gross_revenue_retention", "net_revenue_retention",
    "terms_due", "terms_renewed", "renewal_rate",
    "clv", "logo_churn_rate_ttm", "clv_ttm",
)
_INT_COLUMNS = (
    "accounts_start", "new_accounts", "churned_accounts", "terms_due", "terms_renewed",
)


def compute_kpis(
    tables: RawTables,
    by: Sequence[str] = ("month",),
    gross_margin: float = 0.8,
    start: date | None = None,
    end: date | None = None,
) -> pd.DataFrame:
    """KPIs per calendar month (and per ``by`` group), sorted by month then group.

    ``start`` and ``end`` name the first and last month (any day within them). By default the
    months run from the first full month of subscription data through the last month that ends
    at or before ``tables.extracted_at`` (without an extraction time: through the month of the
    latest start or cancellation in the data). Returns ``month`` (a date), the group columns and
    :data:`KPI_COLUMNS`; an empty frame with those columns when there are no months.
    """
    groups = kpi_groups(by)
    first, last = month_range(tables, start, end)
    columns = ["month", *groups, *KPI_COLUMNS]
    if first is None or last is None or first > last:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    extracted = tables.extracted_date()
    params = {
        "first": first,
        "last": last,
        "extracted": None if extracted is None else extracted.to_pydatetime(),
        "margin": float(gross_margin),
    }
    frame = tables.con.execute(kpi_sql(groups), params).df()
    return _tidy(frame[columns])


def kpi_groups(by: Sequence[str]) -> list[str]:
    """The grouping columns besides ``month``, in the order given; refuses unknown names."""
    unknown = [b for b in by if b not in KPI_GROUPINGS]
    if unknown:
        raise ValueError(f"unknown KPI grouping {unknown}; allowed: {', '.join(KPI_GROUPINGS)}")
    return list(dict.fromkeys(b for b in by if b != "month"))


def month_range(
    tables: RawTables, start: date | None = None, end: date | None = None
) -> tuple[date | None, date | None]:
    """First and last month start of the report (None when there is no data to bound it)."""
    first = _month_start(start) if start is not None else None
    last = _month_start(end) if end is not None else None
    extracted = tables.extracted_date()
    if last is None and extracted is not None:
        # the month before the extraction month is the last one that has ended by then
        last = _previous_month(_month_start(extracted.date()))
    if first is None or last is None:
        data_first, data_last = tables.con.execute(
            """
            SELECT
              -- the first month starting on or after the earliest term start: a full month
              CAST(date_trunc('month', min(start_date) - INTERVAL 1 DAY) + INTERVAL 1 MONTH
                   AS DATE),
              CAST(date_trunc('month', greatest(max(start_date), max(cancelled_at))) AS DATE)
            FROM subscriptions
            """
        ).fetchone()
        first = first if first is not None else data_first
        last = last if last is not None else data_last
    return first, last


def _month_start(day: date) -> date:
    return date(day.year, day.month, 1)


def _previous_month(month: date) -> date:
    return date(month.year - 1, 12, 1) if month.month == 1 else date(month.year, month.month - 1, 1)


def kpi_sql(groups: Sequence[str]) -> str:
    """The whole KPI query; parameters ``$first``, ``$last``, ``$extracted``, ``$margin``."""
    g_cols, g_acct, g_grid, g_k = (_prefixed(groups, alias) for alias in ("", "a", "gr", "k"))
    quoted = ", ".join(f'"{g}"' for g in groups)
    partition = f"PARTITION BY {quoted}" if groups else ""
    order = f"k.month, {_prefixed(groups, 'k')}".rstrip(", ")
    group_keys = (
        f"SELECT DISTINCT {g_cols} 1 AS _one FROM accounts "
        f"UNION SELECT DISTINCT {g_cols} 1 AS _one FROM movements"
        if groups else "SELECT 1 AS _one"
    )

    def on(left: str, right: str) -> str:
        keys = [f"{left}.month = {right}.month"] + [
            f'{left}."{g}" IS NOT DISTINCT FROM {right}."{g}"' for g in groups
        ]
        return " AND ".join(keys)

    def rate(num: str, den: str) -> str:
        return f"CASE WHEN {den} = 0 THEN NULL ELSE ({num}) / {den} END"

    def clv(churn: str) -> str:
        # ARR per account x margin / annual churn; null when there is no churn or no account.
        return (
            f"CASE WHEN k.accounts_start = 0 OR {churn} IS NULL OR {churn} = 0 THEN NULL "
            f"ELSE 12.0 * k.mrr_start / k.accounts_start * $margin "
            f"/ (1 - power(1 - {churn}, 12)) END"
        )

    return f"""
    WITH
    -- months read: the report's, plus the eleven before it for the trailing churn rate
    months AS (
      SELECT CAST(m AS DATE) AS month, CAST(m + INTERVAL 1 MONTH AS DATE) AS next_month
      FROM generate_series(
        CAST($first AS TIMESTAMP) - INTERVAL {TTM_MONTHS - 1} MONTH,
        CAST($last AS TIMESTAMP), INTERVAL 1 MONTH) AS t(m)
    ),
    points AS (SELECT month AS t FROM months UNION SELECT next_month FROM months),
    -- MRR of each account at each month boundary where it has a term in force
    account_mrr AS (
      SELECT p.t, s.account_id, SUM(s.mrr) AS mrr
      FROM points AS p JOIN subscriptions AS s ON {in_force("p.t", "s")}
      GROUP BY p.t, s.account_id
    ),
    at_start AS (
      SELECT m.month, x.account_id, x.mrr FROM months AS m JOIN account_mrr AS x ON x.t = m.month
    ),
    at_end AS (
      SELECT m.month, x.account_id, x.mrr
      FROM months AS m JOIN account_mrr AS x ON x.t = m.next_month
    ),
    account_month AS (
      SELECT COALESCE(s.month, e.month) AS month,
             COALESCE(s.account_id, e.account_id) AS account_id,
             COALESCE(s.mrr, 0) AS mrr_start, COALESCE(e.mrr, 0) AS mrr_end
      FROM at_start AS s FULL JOIN at_end AS e
        ON s.month = e.month AND s.account_id = e.account_id
    ),
    movements AS (
      SELECT m.month, {g_acct}
        SUM(m.mrr_start) AS mrr_start,
        SUM(m.mrr_end) AS mrr_end,
        COUNT(*) FILTER (WHERE m.mrr_start > 0) AS accounts_start,
        COUNT(*) FILTER (WHERE m.mrr_start = 0 AND m.mrr_end > 0) AS new_accounts,
        COUNT(*) FILTER (WHERE m.mrr_start > 0 AND m.mrr_end = 0) AS churned_accounts,
        SUM(CASE WHEN m.mrr_start = 0 THEN m.mrr_end ELSE 0 END) AS new_mrr,
        SUM(CASE WHEN m.mrr_start > 0 AND m.mrr_end > m.mrr_start
                 THEN m.mrr_end - m.mrr_start ELSE 0 END) AS expansion_mrr,
        SUM(CASE WHEN m.mrr_end > 0 AND m.mrr_end < m.mrr_start
                 THEN m.mrr_start - m.mrr_end ELSE 0 END) AS contraction_mrr,
        SUM(CASE WHEN m.mrr_end = 0 THEN m.mrr_start ELSE 0 END) AS churned_mrr
      FROM account_month AS m LEFT JOIN accounts AS a ON a.account_id = m.account_id
      GROUP BY ALL
    ),
    -- fixed terms ending in a report month, known to have ended by the extraction time
    renewals AS (
      SELECT m.month, {g_acct}
        COUNT(*) AS terms_due,
        COUNT(*) FILTER (WHERE EXISTS (
          SELECT 1 FROM subscriptions AS r
          WHERE r.account_id = s.account_id AND r.product = s.product
            AND {in_force("CAST(s.end_date + INTERVAL 1 DAY AS DATE)", "r")}
        )) AS terms_renewed
      FROM subscriptions AS s
      JOIN months AS m ON s.end_date >= m.month AND s.end_date < m.next_month
      LEFT JOIN accounts AS a ON a.account_id = s.account_id
      WHERE m.month >= $first
        AND ($extracted IS NULL OR s.end_date < CAST($extracted AS TIMESTAMP))
      GROUP BY ALL
    ),
    -- every month x group, so that empty groups get a row and windows count months
    group_keys AS ({group_keys}),
    grid AS (SELECT m.month, {g_grid} 1 AS _one FROM months AS m CROSS JOIN group_keys AS gr),
    counts AS (
      SELECT gr.month, {g_grid}
        COALESCE(v.mrr_start, 0) AS mrr_start,
        COALESCE(v.mrr_end, 0) AS mrr_end,
        CAST(COALESCE(v.accounts_start, 0) AS BIGINT) AS accounts_start,
        CAST(COALESCE(v.new_accounts, 0) AS BIGINT) AS new_accounts,
        CAST(COALESCE(v.churned_accounts, 0) AS BIGINT) AS churned_accounts,
        COALESCE(v.new_mrr, 0) AS new_mrr,
        COALESCE(v.expansion_mrr, 0) AS expansion_mrr,
        COALESCE(v.contraction_mrr, 0) AS contraction_mrr,
        COALESCE(v.churned_mrr, 0) AS churned_mrr,
        CAST(COALESCE(r.terms_due, 0) AS BIGINT) AS terms_due,
        CAST(COALESCE(r.terms_renewed, 0) AS BIGINT) AS terms_renewed
      FROM grid AS gr
      LEFT JOIN movements AS v ON {on("gr", "v")}
      LEFT JOIN renewals AS r ON {on("gr", "r")}
    ),
    with_ttm AS (
      SELECT *,
        SUM(churned_accounts) OVER w AS churned_ttm,
        SUM(accounts_start) OVER w AS accounts_start_ttm
      FROM counts AS gr
      WINDOW w AS ({partition} ORDER BY month
                   ROWS BETWEEN {TTM_MONTHS - 1} PRECEDING AND CURRENT ROW)
    ),
    rates AS (
      SELECT *,
        {rate("CAST(churned_accounts AS DOUBLE)", "accounts_start")} AS logo_churn_rate,
        {rate("CAST(churned_ttm AS DOUBLE)", "accounts_start_ttm")} AS logo_churn_rate_ttm
      FROM with_ttm
    )
    SELECT k.month, {g_k}
      k.mrr_start, k.mrr_end, 12 * k.mrr_end AS arr_end,
      k.accounts_start, k.new_accounts, k.churned_accounts, k.logo_churn_rate,
      k.new_mrr, k.expansion_mrr, k.contraction_mrr, k.churned_mrr,
      {rate("k.churned_mrr + k.contraction_mrr", "k.mrr_start")} AS revenue_churn_rate,
      {rate("k.mrr_start - k.churned_mrr - k.contraction_mrr", "k.mrr_start")}
        AS gross_revenue_retention,
      {rate("k.mrr_start - k.churned_mrr - k.contraction_mrr + k.expansion_mrr", "k.mrr_start")}
        AS net_revenue_retention,
      k.terms_due, k.terms_renewed,
      {rate("CAST(k.terms_renewed AS DOUBLE)", "k.terms_due")} AS renewal_rate,
      {clv("k.logo_churn_rate")} AS clv,
      k.logo_churn_rate_ttm,
      {clv("k.logo_churn_rate_ttm")} AS clv_ttm
    FROM rates AS k
    WHERE k.month >= $first
    ORDER BY {order}
    """


def _prefixed(groups: Sequence[str], alias: str) -> str:
    """``alias."g1", alias."g2", `` (trailing comma included) to put before other columns."""
    dot = f"{alias}." if alias else ""
    return "".join(f'{dot}"{g}", ' for g in groups)


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Dates as dates, counts as int64, rates as nullable floats (null, never NaN)."""
    frame = frame.reset_index(drop=True)
    frame["month"] = pd.to_datetime(frame["month"]).dt.date
    for col in _INT_COLUMNS:
        frame[col] = frame[col].astype("int64")
    for col in KPI_COLUMNS:
        if col not in _INT_COLUMNS:
            frame[col] = frame[col].astype("float64")
    for col in RATE_COLUMNS:
        frame[col] = frame[col].astype("Float64")
    return frame
