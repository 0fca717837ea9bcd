"""Which accounts changed between two runs: what a CRM wants pushed, not the whole book.

An account is changed when it is new (absent from the previous run), its risk tier moved, or
its churn or upsell probability moved by at least the threshold (either way). Differences are
compared rounded to 9 decimals, so that 0.35 - 0.30 (0.04999999999999999 in floats) is the
0.05 a person reads; a probability that appears or disappears (null on one side) is a change.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

#: What a changed row carries besides the run's own columns, in file order.
CHANGE_COLUMNS = ("previous_as_of", "previous_churn_probability", "churn_change",
                  "previous_upsell_probability", "upsell_change", "previous_risk_tier",
                  "changes")
#: The values of ``changes`` (joined by ";"): why the row is in the changed set.
NEW, CHURN, UPSELL, RISK_TIER = "new", "churn", "upsell", "risk_tier"
PREVIOUS = ("churn_probability", "upsell_probability", "risk_tier")


def previous_run(dates: list[date], as_of: date) -> date | None:
    """The newest run before ``as_of`` among ``dates``, or None for a first run."""
    earlier = [d for d in dates if d < as_of]
    return max(earlier) if earlier else None


def changed_rows(current: pd.DataFrame, previous: pd.DataFrame | None,
                 previous_as_of: date | None, threshold: float) -> pd.DataFrame:
    """The rows of ``current`` that changed since ``previous`` (None: every row is new), with
    the previous values, the changes and why, in ``current``'s order."""
    before = (previous[["account_id", *PREVIOUS]] if previous is not None
              else pd.DataFrame({"account_id": pd.Series(dtype=object),
                                 **{c: pd.Series(dtype=object if c == "risk_tier" else float)
                                    for c in PREVIOUS}}))
    before = before.rename(columns={c: f"previous_{c}" for c in PREVIOUS})
    merged = current.merge(before, on="account_id", how="left", indicator=True, validate="1:1")
    new = (merged.pop("_merge") == "left_only").to_numpy()
    merged["churn_change"] = merged["churn_probability"] - merged["previous_churn_probability"]
    merged["upsell_change"] = merged["upsell_probability"] - merged["previous_upsell_probability"]
    why = {
        NEW: new,
        CHURN: ~new & _moved(merged, "churn", threshold),
        UPSELL: ~new & _moved(merged, "upsell", threshold),
        RISK_TIER: ~new & _differs(merged["risk_tier"], merged["previous_risk_tier"]),
    }
    names = np.array(list(why))
    flags = np.column_stack(list(why.values()))
    keep = flags.any(axis=1)
    merged["previous_as_of"] = previous_as_of
    changed = merged.loc[keep].reset_index(drop=True)
    changed["changes"] = [";".join(names[row]) for row in flags[keep]]
    return changed[[*current.columns, *CHANGE_COLUMNS]]


def _moved(frame: pd.DataFrame, task: str, threshold: float) -> np.ndarray:
    now = frame[f"{task}_probability"].to_numpy(float)
    then = frame[f"previous_{task}_probability"].to_numpy(float)
    size = np.round(np.abs(now - then), 9)
    with np.errstate(invalid="ignore"):
        return (size >= threshold) | (np.isnan(now) != np.isnan(then))


def _differs(now: pd.Series, then: pd.Series) -> np.ndarray:
    both_null = now.isna() & then.isna()
    return ((now != then) & ~both_null).to_numpy()
