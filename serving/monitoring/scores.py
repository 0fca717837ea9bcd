"""Score drift: each task's probabilities and the churn risk tiers now, against the training
window scored by the same model and against the previous runs of the score history.

Probabilities are binned by the training window's deciles (``drift.quantile_edges``), so a PSI
here reads like a feature's; tier shares are the share of accounts in each risk tier.
"""

from __future__ import annotations

import numpy as np

from serving.monitoring.drift import (
    Thresholds,
    level,
    noise_psi,
    numeric_counts,
    psi,
    quantile_edges,
)
from serving.valuation import RISK_TIERS, risk_tier

#: The tasks whose probability is one per account, kept in the history (cross-sell's is per
#: candidate product: ``serving.monitoring.cross_sell``).
SCORE_COLUMNS = {"churn": "churn_probability", "upsell": "upsell_probability"}


def score_psi(reference: np.ndarray, current: np.ndarray, thresholds: Thresholds,
              reference_accounts: int | None = None, current_accounts: int | None = None
              ) -> dict:
    """PSI of ``current`` probabilities on ``reference``'s decile bins, with its level. The
    accounts (default: the rows) set the noise level: cross-sell's pooled rows are several
    per account, and an account's rows are not independent evidence."""
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    edges = quantile_edges(reference)
    expected, actual = numeric_counts(reference, edges), numeric_counts(current, edges)
    value = psi(expected, actual)
    noise = noise_psi(reference_accounts or len(reference), current_accounts or len(current),
                      int(((expected > 0) | (actual > 0)).sum()), thresholds.confidence)
    return {"psi": round(value, 6), "noise_psi": round(noise, 6),
            "level": level(value, noise, thresholds),
            "mean_reference": float(np.nanmean(reference)) if len(reference) else None,
            "mean": float(np.nanmean(current)) if len(current) else None}


def tier_shares(churn_probability: np.ndarray) -> dict[str, float]:
    """Share of accounts in each risk tier (high, medium, low)."""
    tiers = risk_tier(np.asarray(churn_probability, dtype=float))
    n = max(int((tiers != None).sum()), 1)  # noqa: E711 - numpy elementwise comparison
    return {tier: float((tiers == tier).sum() / n) for tier, _ in RISK_TIERS}
