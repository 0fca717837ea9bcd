"""The best achievable ranking on generated data: the generator's own true probabilities.

For a snapshot at T with horizon H, the oracle's probability of the event within the window is
1 - prod(1 - p_m) over the simulated months m that start in [T, T + H), from the truth file the
generator writes beside the contract tables. Only generated data has it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TRUTH_FILE = "account_month_truth.parquet"
COLUMN = {"churn": "churn_prob", "upsell": "expansion_prob"}


def oracle_probabilities(
    truth_dir: Path, task: str, rows: pd.DataFrame, horizon_days: int
) -> np.ndarray | None:
    """Oracle probability for each (account_id, as_of) row, or None without a truth file."""
    path = Path(truth_dir) / TRUTH_FILE
    if task not in COLUMN or not path.exists():
        return None
    truth = pd.read_parquet(path, columns=["account_id", "month", COLUMN[task]])
    truth["month"] = pd.to_datetime(truth["month"])
    keys = rows[["account_id", "as_of"]].copy()
    keys["as_of"] = pd.to_datetime(keys["as_of"])
    keys["row"] = np.arange(len(keys))
    joined = keys.merge(truth, on="account_id", how="left")
    end = joined["as_of"] + pd.Timedelta(days=horizon_days)
    inside = (joined["month"] >= joined["as_of"]) & (joined["month"] < end)
    survive = np.log1p(-joined[COLUMN[task]].where(inside, 0.0).clip(upper=1 - 1e-12))
    per_row = survive.groupby(joined["row"]).sum()
    return 1.0 - np.exp(per_row.reindex(keys["row"], fill_value=0.0).to_numpy())
