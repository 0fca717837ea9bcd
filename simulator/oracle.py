"""The best achievable ranking on generated data: the generator's own true probabilities.

For a snapshot at T with horizon H, the oracle is P(label event in [T, T + H) | the simulated
state at T), built from the truth file the generator writes beside the contract tables (only
generated data has it), one factor per simulated month that overlaps the window:

- churn, fixed term ending that month on ``renewal_day``: counts only if the day is in the
  window (the term is in force on its end day). If its early decision (leave with notice) was
  drawn in a month before T, the state at T knows it: ``churn_prob`` (1 after a notice, else
  the chance of leaving silently at the end); otherwise ``renewal_churn_prob``, the chance
  before that decision.
- churn, open-ended term: ``churn_prob`` x the share of the month's days in the window (the
  stop day is uniform in the month).
- upsell: ``upsell_prob``, the chance that the month lifts ARR by the generator's
  ``UPSELL_REFERENCE_GROWTH`` (10 %, the default ``upsell_min_growth``) or adds a product, at
  the renewal day (counted if in the window) or uniform in the month.

The window's probability is 1 - prod(1 - q_m). Months after T use the probabilities the
simulation actually drew with (the health it later had), so the oracle knows a little more
than the state at T: it bounds what any model of the exported data can reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.params import UPSELL_REFERENCE_GROWTH
from simulator.truth import TRUTH_FILE

TASKS = ("churn", "upsell")
COLUMNS = {
    "churn": ["churn_prob", "renewal_churn_prob"],
    "upsell": ["upsell_prob"],
}


def oracle_probabilities(
    truth_dir: Path, task: str, rows: pd.DataFrame, horizon_days: int
) -> np.ndarray | None:
    """Oracle probability for each (account_id, as_of) row, or None without a truth file."""
    path = Path(truth_dir) / TRUTH_FILE
    if task not in TASKS or not path.exists():
        return None
    columns = ["account_id", "month", "renewal_day", "decided_month", *COLUMNS[task]]
    return window_probabilities(pd.read_parquet(path, columns=columns), task, rows, horizon_days)


@dataclass(frozen=True)
class OracleReference:
    """The oracle as training's reference-probability provider (``training.train.Reference``).

    The composition root builds one for a data directory's truth folder and hands it to
    ``train``; production training never knows where the truth lives or what it means.
    """

    truth_dir: Path

    def __call__(
        self, task: str, rows: pd.DataFrame, *, horizon_days: int, upsell_min_growth: float
    ) -> np.ndarray | None:
        if task == "upsell" and upsell_min_growth != UPSELL_REFERENCE_GROWTH:
            return None  # the truth's upsell probability is for the reference growth only
        return oracle_probabilities(self.truth_dir, task, rows, horizon_days)


def window_probabilities(
    truth: pd.DataFrame, task: str, rows: pd.DataFrame, horizon_days: int
) -> np.ndarray:
    """The oracle from a truth frame (columns as in the truth file); 0 for unknown accounts."""
    truth = truth.copy()
    for column in ("month", "renewal_day", "decided_month"):
        truth[column] = pd.to_datetime(truth[column])
    keys = rows[["account_id", "as_of"]].copy()
    keys["as_of"] = pd.to_datetime(keys["as_of"])
    keys["row"] = np.arange(len(keys))
    j = keys.merge(truth, on="account_id", how="inner")
    start, end = j["as_of"], j["as_of"] + pd.Timedelta(days=horizon_days)
    month_end = j["month"] + pd.offsets.MonthBegin(1)
    share = _share(j["month"], month_end, start, end)
    fixed = j["renewal_day"].notna()
    on_day = (j["renewal_day"] >= start) & (j["renewal_day"] < end)
    timing = np.where(fixed, on_day.astype(float), share)
    if task == "churn":
        known = j["decided_month"] < start
        p = np.where(fixed & ~known, j["renewal_churn_prob"], j["churn_prob"])
    else:
        p = j["upsell_prob"].to_numpy()
    log_survive = np.log1p(-np.clip(p * timing, 0.0, 1.0 - 1e-12))
    # Months after the account left have no truth rows; they stay at risk at the hazard of
    # its last month, else leaving early would lower the oracle of exactly those who leave.
    last = j["month"] == j.groupby("account_id")["month"].transform("max")
    after = (end - np.maximum(month_end, start)).dt.days.clip(lower=0)
    missing_months = np.where(last & ~fixed, after / (month_end - j["month"]).dt.days, 0.0)
    log_survive += missing_months * np.log1p(-np.clip(p, 0.0, 1.0 - 1e-12))
    per_row = pd.Series(log_survive).groupby(j["row"].to_numpy()).sum()
    return 1.0 - np.exp(per_row.reindex(keys["row"], fill_value=0.0).to_numpy())


def _share(lo: pd.Series, hi: pd.Series, start: pd.Series, end: pd.Series) -> np.ndarray:
    """Share of the days of ``[lo, hi)`` inside ``[start, end)``."""
    overlap = (np.minimum(hi, end) - np.maximum(lo, start)).dt.days
    return (overlap / (hi - lo).dt.days).clip(lower=0.0).to_numpy()
