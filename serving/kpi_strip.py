"""The page's KPI strip for the whole book or for one owner's and/or one segment's accounts.

The KPIs of the last full month before as_of are kept per (owner, segment) as their additive
parts (accounts, churned accounts, MRR movements, renewals, over the trailing twelve months),
once per generation; a filtered strip sums the parts of the accounts the list shows and takes
the rates of those sums, the same formulas as `features.kpis`. So the strip answers a filter in
microseconds and always describes the accounts below it.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from features.kpis import TTM_MONTHS
from serving.ranking import UNASSIGNED

GROUPS = ("owner", "segment")
PARTS = ("mrr_start", "arr_end", "accounts_start", "churned_accounts", "expansion_mrr",
         "contraction_mrr", "churned_mrr", "terms_due", "terms_renewed")


def last_full_month(as_of: date) -> date:
    """The first day of the last calendar month that ended before as_of."""
    last = (pd.Timestamp(as_of) - pd.offsets.MonthBegin(1)).date()
    if last >= as_of:
        last = (pd.Timestamp(as_of) - timedelta(days=1)).date().replace(day=1)
    return last


def kpi_parts(tables, as_of: date, gross_margin: float) -> pd.DataFrame:
    """Per month of the trailing twelve ending with the last full month, per owner and
    segment: the KPIs' additive parts (`PARTS`); empty when the data have no such month."""
    from features.kpis import compute_kpis

    last = last_full_month(as_of)
    first = (pd.Timestamp(last) - pd.DateOffset(months=TTM_MONTHS - 1)).date()
    frame = compute_kpis(tables, by=("month", *GROUPS), gross_margin=gross_margin,
                         start=first, end=last)
    frame = frame[frame["month"] <= last]
    return frame[["month", *GROUPS, *PARTS]].reset_index(drop=True)


def strip(parts: pd.DataFrame, owner: str | None = None, segment: str | None = None) -> dict:
    """The KPI strip of the accounts of an owner (``unassigned``: those without one) and/or a
    segment, of the whole book without filters; {} when there is no month to report."""
    if parts.empty:
        return {}
    keep = pd.Series(True, index=parts.index)
    if owner is not None:
        hit = parts["owner"] == owner
        if owner == UNASSIGNED:
            hit = hit | parts["owner"].isna()
        keep &= hit.fillna(False)
    if segment is not None:
        keep &= (parts["segment"] == segment).fillna(False)
    chosen = parts[keep]
    month = parts["month"].max()
    now = chosen[chosen["month"] == month]
    total = now[list(PARTS)].sum()
    trailing = chosen[["churned_accounts", "accounts_start"]].sum()
    by_segment = now.groupby("segment", dropna=True)["arr_end"].sum()
    return {
        "month": str(month)[:7],
        "logo_churn_rate": _rate(total["churned_accounts"], total["accounts_start"]),
        "logo_churn_rate_ttm": _rate(trailing["churned_accounts"], trailing["accounts_start"]),
        "renewal_rate": _rate(total["terms_renewed"], total["terms_due"]),
        "net_revenue_retention": _rate(
            total["mrr_start"] - total["churned_mrr"] - total["contraction_mrr"]
            + total["expansion_mrr"], total["mrr_start"]),
        "arr": float(total["arr_end"]),
        "arr_by_segment": {str(s): float(v) for s, v in by_segment.items()  # an owner's own
                           if (segment is None or s == segment) and (owner is None or v)},
    }


def _rate(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else float(numerator) / float(denominator)
