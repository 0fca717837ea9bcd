"""The customer's own health score: what their customer-success tool would have exported.

One row per scored account and simulated month, stamped at ``HEALTH_SCORE_HOUR`` on the
month's last day and computed from that month's latent health plus Gaussian noise of a known
size (``simulator.params``: ``HEALTH_SCORE_NOISE``), so its quality is known: it ranks churn
and expansion well, but below the oracle. Drawn from a generator of its own, so the rest of
the book is the same with or without it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from simulator import params as P
from simulator.columns import US_PER_DAY, US_PER_HOUR, float_array, take_strings, timestamp_array

STREAM = 0x4853  # the score's random stream beside the world's seed


def health_score_rows(truth: dict[str, np.ndarray], n_accounts: int, seed: int,
                      noise: float = P.HEALTH_SCORE_NOISE) -> dict[str, np.ndarray]:
    """Per truth row (account, month) of a scored account: the score, its band and its stamp."""
    rng = np.random.default_rng([seed, STREAM])
    scored = rng.random(n_accounts) < P.HEALTH_SCORE_COVERAGE
    keep = scored[truth["account"]]
    health = truth["health"][keep]
    z = P.HEALTH_SCORE_SCALE * (health + noise * rng.standard_normal(len(health)))
    score = np.round(100.0 / (1.0 + np.exp(-z)), 1)
    month = truth["month"][keep].astype("datetime64[D]")
    next_month = (month.astype("datetime64[M]") + 1).astype("datetime64[D]").astype(np.int64)
    stamped = (next_month - 1) * US_PER_DAY + P.HEALTH_SCORE_HOUR * US_PER_HOUR
    bounds = np.array([b for b, _ in P.HEALTH_SCORE_BANDS])
    band = np.searchsorted(bounds, score, side="right")
    return {"account": truth["account"][keep], "scored": stamped, "score": score, "band": band}


def health_score_columns(rows: dict[str, np.ndarray], account_ids: pa.Array
                         ) -> dict[str, pa.Array]:
    """The ``health_scores`` contract columns."""
    return {
        "account_id": account_ids.take(pa.array(rows["account"].astype(np.int64))),
        "scored_at": timestamp_array(rows["scored"]),
        "score": float_array(rows["score"]),
        "label": take_strings(tuple(name for _, name in P.HEALTH_SCORE_BANDS), rows["band"]),
    }
