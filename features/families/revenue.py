"""Revenue and contract features, from the subscription terms in force at as_of."""

from __future__ import annotations

from functools import partial

from features.catalogue import AS_OF, At, Feature, FeatureGroup, FeatureSpec, exact, ratio
from features.terms import billing_months, in_force, in_force_until, notice_given

FAMILY = "revenue"
SOURCE = "subscriptions"


def _f(name: str, description: str, dtype: str, window: int | None = None, **kw) -> Feature:
    return Feature(name, description, FAMILY, SOURCE, dtype, window, **kw)  # type: ignore[arg-type]


def group(spec: FeatureSpec) -> FeatureGroup:
    change_windows = spec.windows(at_least=30)
    return FeatureGroup("revenue", FAMILY, SOURCE, revenue_features(change_windows),
                        partial(revenue_sql, change_windows),
                        partial(revenue_grid_sql, change_windows))


def revenue_features(change_windows: tuple[int, ...]) -> tuple[Feature, ...]:
    """The family's declarations, in snapshot column order."""
    return (
        _f("mrr", "Monthly recurring revenue of the contracts in force", "float64"),
        _f("arr", "Annual recurring revenue (12 x MRR)", "float64"),
        *[
            _f(f"mrr_change_{w}d", f"Change in MRR over the last {w} days", "float64", w)
            for w in change_windows
        ],
        *[
            _f(f"mrr_change_{w}d_pct", f"Change in MRR over the last {w} days, as a share",
               "float64", w)
            for w in change_windows if w >= 90
        ],
        _f("products_held", "Number of products under contract", "int64"),
        _f("seats", "Paid seats across contracts", "int64"),
        _f("discount_pct", "Average discount off list price, weighted by MRR (%)", "float64"),
        _f("days_to_renewal", "Days until the next fixed-term contract ends", "int64"),
        _f("contract_term_months", "Longest contract term in force, in months (1 = monthly)",
           "int64"),
        _f("annual_billing_share", "Share of MRR billed yearly or less often (a billing period "
           "of 12 months or more), among terms whose period is known", "float64"),
        _f("auto_renew_off", "A contract in force will not renew automatically (1 = yes)",
           "int64"),
        _f("cancellation_notice", "The customer gave notice on a contract in force (1 = yes)",
           "int64"),
        _f("tenure_days", "Days since the account's first contract started", "int64"),
        _f("plan_tier", "Plan of the largest contract", "string"),
    )


def revenue_sql(change_windows: tuple[int, ...], cutoff: At) -> str:
    """The family's CTE: one pass over the terms in force now and ``w`` days ago."""
    at = cutoff.ts()
    prev = ",\n".join(
        f"SUM(CASE WHEN {in_force(cutoff.ts(w))} THEN {exact('s.mrr')} ELSE 0 END) AS mrr_{w}d_ago"
        for w in change_windows
    )
    return f"""
SELECT {cutoff.key('agg')}account_id, {_outputs(change_windows)}
FROM (
  SELECT {cutoff.key()}s.account_id,
    SUM(CASE WHEN {in_force(at)} THEN {exact('s.mrr')} ELSE 0 END) AS mrr,
    {prev},
    COUNT(DISTINCT CASE WHEN {in_force(at)} THEN s.product END) AS products_held,
    SUM(CASE WHEN {in_force(at)} THEN s.seats ELSE 0 END) AS seats,
    SUM(CASE WHEN {in_force(at)} THEN {exact('s.discount_pct * s.mrr')} ELSE 0 END)
      AS discount_x_mrr,
    AVG(CASE WHEN {in_force(at)} THEN {exact('s.discount_pct')} END) AS discount_avg,
    MIN(CASE WHEN {in_force(at)} THEN date_diff('day', {cutoff.day()}, s.end_date) END)
      AS days_to_renewal,
    MAX(CASE WHEN {in_force(at)} THEN CASE WHEN s.end_date IS NULL THEN 1
      ELSE date_diff('month', s.start_date, s.end_date) END END) AS contract_term_months,
    SUM(CASE WHEN {in_force(at)} AND {billing_months()} >= 12 THEN {exact('s.mrr')} ELSE 0 END)
      AS annual_mrr,
    SUM(CASE WHEN {in_force(at)} AND {billing_months()} IS NOT NULL THEN {exact('s.mrr')}
      ELSE 0 END)
      AS known_period_mrr,
    MAX(CASE WHEN {in_force(at)} AND s.end_date IS NOT NULL AND NOT s.auto_renew
      THEN 1 ELSE 0 END) AS auto_renew_off,
    MAX(CASE WHEN {in_force(at)} AND {notice_given(at)} THEN 1 ELSE 0 END)
      AS cancellation_notice,
    date_diff('day', MIN(s.start_date), {cutoff.day()}) AS tenure_days
  FROM subscriptions s{cutoff.dates()}
  WHERE s.start_date < {at}
  GROUP BY {cutoff.key()}s.account_id
) agg
LEFT JOIN (
  SELECT {cutoff.key('ranked')}account_id AS top_account_id, plan AS plan_tier FROM (
    SELECT {cutoff.key()}s.account_id, s.plan, ROW_NUMBER() OVER (
      PARTITION BY {cutoff.key()}s.account_id
      ORDER BY s.mrr DESC, s.plan, s.subscription_id) AS rank
    FROM subscriptions s{cutoff.dates()} WHERE {in_force(at)}
  ) ranked WHERE rank = 1
) top ON top.top_account_id = agg.account_id{cutoff.same('top', 'agg')}
"""


def _outputs(change_windows: tuple[int, ...]) -> str:
    """The family's columns from its per-account aggregates (both forms share them)."""
    changes = ",\n".join(
        [f"ROUND(mrr - mrr_{w}d_ago, 2) AS mrr_change_{w}d" for w in change_windows]
        + [
            f"CASE WHEN mrr_{w}d_ago > 0 THEN {ratio(f'mrr - mrr_{w}d_ago', f'mrr_{w}d_ago')} END "
            f"AS mrr_change_{w}d_pct"
            for w in change_windows if w >= 90
        ]
    )
    return f"""ROUND(mrr, 2) AS mrr, ROUND(12 * mrr, 2) AS arr,
{changes},
products_held, seats,
CASE WHEN mrr > 0 THEN {ratio('discount_x_mrr', 'mrr')} ELSE discount_avg END AS discount_pct,
days_to_renewal, contract_term_months,
CASE WHEN known_period_mrr > 0 THEN {ratio('annual_mrr', 'known_period_mrr')} END
  AS annual_billing_share,
auto_renew_off, cancellation_notice, tenure_days, plan_tier"""


def revenue_grid_sql(change_windows: tuple[int, ...], dates: str) -> str:
    """Every date of the table ``dates`` at once. A term is in force over an interval
    (``start_date < T <= stop``), so a range join of the dates with those intervals pairs each
    date only with the terms in force at it (and, for the MRR ``w`` days before, with the terms
    in force then), instead of every term started before it evaluated against the date ~20
    times; the accounts with a term started before each date come from their first start.
    The sums are DECIMAL, so their values do not depend on the rows' order; the largest
    contract is the least (-mrr, plan, subscription_id), the single-date ranking's order."""
    at = f"g.{AS_OF}"
    ago = "\n".join(f"""LEFT JOIN (
  SELECT g.{AS_OF}, s.account_id, SUM({exact('s.mrr')}) AS mrr_{w}d_ago
  FROM terms s JOIN {dates} g
    ON s.start_date < g.{AS_OF} - INTERVAL {w} DAY AND s.stop >= g.{AS_OF} - INTERVAL {w} DAY
  GROUP BY g.{AS_OF}, s.account_id
) ago_{w} ON ago_{w}.{AS_OF} = k.{AS_OF} AND ago_{w}.account_id = k.account_id"""
                     for w in change_windows)
    prev = "".join(f"COALESCE(ago_{w}.mrr_{w}d_ago, 0) AS mrr_{w}d_ago, " for w in change_windows)
    return f"""
WITH terms AS (SELECT s.*, {in_force_until()} AS stop FROM subscriptions s),
keys AS (
  SELECT g.{AS_OF}, f.account_id,
    date_diff('day', f.first_start, CAST(g.{AS_OF} AS DATE)) AS tenure_days
  FROM (SELECT account_id, MIN(start_date) AS first_start FROM subscriptions GROUP BY account_id) f
  JOIN {dates} g ON f.first_start < g.{AS_OF}
),
now AS (
  SELECT g.{AS_OF}, s.account_id,
    SUM({exact('s.mrr')}) AS mrr,
    COUNT(DISTINCT s.product) AS products_held,
    SUM(s.seats) AS seats,
    SUM({exact('s.discount_pct * s.mrr')}) AS discount_x_mrr,
    AVG({exact('s.discount_pct')}) AS discount_avg,
    MIN(date_diff('day', CAST({at} AS DATE), s.end_date)) AS days_to_renewal,
    MAX(CASE WHEN s.end_date IS NULL THEN 1 ELSE date_diff('month', s.start_date, s.end_date) END)
      AS contract_term_months,
    SUM(CASE WHEN {billing_months()} >= 12 THEN {exact('s.mrr')} ELSE 0 END) AS annual_mrr,
    SUM(CASE WHEN {billing_months()} IS NOT NULL THEN {exact('s.mrr')} ELSE 0 END)
      AS known_period_mrr,
    MAX(CASE WHEN s.end_date IS NOT NULL AND NOT s.auto_renew THEN 1 ELSE 0 END)
      AS auto_renew_off,
    MAX(CASE WHEN {notice_given(at)} THEN 1 ELSE 0 END) AS cancellation_notice,
    arg_min(s.plan, (-s.mrr, s.plan, s.subscription_id)) AS plan_tier
  FROM terms s JOIN {dates} g ON s.start_date < {at} AND s.stop >= {at}
  GROUP BY g.{AS_OF}, s.account_id
),
agg AS (
  SELECT k.{AS_OF}, k.account_id, COALESCE(n.mrr, 0) AS mrr, {prev}
    COALESCE(n.products_held, 0) AS products_held, COALESCE(n.seats, 0) AS seats,
    COALESCE(n.discount_x_mrr, 0) AS discount_x_mrr, n.discount_avg, n.days_to_renewal,
    n.contract_term_months, COALESCE(n.annual_mrr, 0) AS annual_mrr,
    COALESCE(n.known_period_mrr, 0) AS known_period_mrr,
    COALESCE(n.auto_renew_off, 0) AS auto_renew_off,
    COALESCE(n.cancellation_notice, 0) AS cancellation_notice, k.tenure_days, n.plan_tier
  FROM keys k
  LEFT JOIN now n ON n.{AS_OF} = k.{AS_OF} AND n.account_id = k.account_id
  {ago}
)
SELECT {AS_OF}, account_id, {_outputs(change_windows)}
FROM agg
"""
