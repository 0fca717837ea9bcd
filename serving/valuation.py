"""From probabilities to money and a next step: risk tier, ARR at risk, expected expansion,
expected cross-sell ARR, and the suggested play.

Pure and row-wise (numpy/pandas, no model, no I/O), so the API, the DuckDB batch engine and
Spark's `mapInPandas` all run the same arithmetic. The money figures come from each model's
`meta["value"]` (learned at training from the accounts that really did expand or adopt; see
`training/value.py`): expected expansion = P(upsell) x ARR x typical growth of the segment;
expected cross-sell ARR = P(adopt next best product) x typical new ARR of that product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Churn probability (over the model's horizon) at which a tier starts.
RISK_TIERS = (("high", 0.30), ("medium", 0.10), ("low", 0.0))
#: Below these probabilities an expansion or cross-sell play is not worth a call.
MIN_UPSELL_PROBABILITY = 0.20
MIN_CROSS_SELL_PROBABILITY = 0.15

PLAYS = {
    "retention": "Save the account: executive sponsor call, success plan, review before renewal",
    "nurture": "Nurture: keep the champion engaged, share value delivered, plan the next QBR",
    "expansion": "Expand: propose more seats or a higher plan at the next account review",
    "cross-sell": "Cross-sell: introduce the next best product to the champion",
}

INPUT_COLUMNS = ("arr", "segment", "churn_probability", "upsell_probability",
                 "next_best_product", "next_best_product_probability")
OUTPUT_COLUMNS = ("risk_tier", "arr_at_risk", "expected_expansion", "expected_cross_sell_arr",
                  "play")


@dataclass(frozen=True)
class ValueModel:
    """The learned worth of an outcome: an overall figure and per-group figures."""

    overall: float = 0.0
    groups: tuple[tuple[str, float], ...] = ()

    @classmethod
    def from_meta(cls, meta: dict | None) -> ValueModel:
        value = (meta or {}).get("value") or {}
        groups = tuple(sorted((str(k), float(v)) for k, v in (value.get("groups") or {}).items()))
        return cls(float(value.get("overall") or 0.0), groups)

    def per_row(self, keys: np.ndarray) -> np.ndarray:
        lookup = dict(self.groups)
        return np.array([lookup.get(str(k), self.overall) if k is not None else self.overall
                         for k in keys], dtype="float64")


def risk_tier(p: np.ndarray) -> np.ndarray:
    """'high' / 'medium' / 'low' by churn probability; None where it is unknown."""
    p = np.asarray(p, dtype="float64")
    out = np.full(p.shape, None, dtype=object)
    for tier, floor in reversed(RISK_TIERS):
        out[p >= floor] = tier
    return out


def suggested_play(tier: np.ndarray, upsell_p: np.ndarray, cross_p: np.ndarray,
                   expansion: np.ndarray, cross_arr: np.ndarray) -> np.ndarray:
    """Retention first (high risk), then the larger of expansion and cross-sell when likely
    enough, else nurture (medium risk and everyone else)."""
    upsell_ok = np.nan_to_num(upsell_p) >= MIN_UPSELL_PROBABILITY
    cross_ok = np.nan_to_num(cross_p) >= MIN_CROSS_SELL_PROBABILITY
    prefer_cross = cross_ok & (~upsell_ok | (np.nan_to_num(cross_arr) > np.nan_to_num(expansion)))
    out = np.full(len(tier), "nurture", dtype=object)
    out[upsell_ok] = "expansion"
    out[prefer_cross] = "cross-sell"
    out[tier == "high"] = "retention"
    return out


def value_columns(columns: dict[str, np.ndarray], upsell: ValueModel,
                  cross_sell: ValueModel) -> dict[str, np.ndarray]:
    """The OUTPUT_COLUMNS for arrays of the INPUT_COLUMNS (probabilities may be NaN when a
    model is absent). Numpy only: a one-account request must not pay pandas' ~ms overheads.
    Money is rounded to cents."""
    arr = np.asarray(columns["arr"], dtype="float64")
    churn_p = np.asarray(columns["churn_probability"], dtype="float64")
    upsell_p = np.asarray(columns["upsell_probability"], dtype="float64")
    cross_p = np.asarray(columns["next_best_product_probability"], dtype="float64")
    expansion = upsell_p * arr * upsell.per_row(columns["segment"])
    cross_arr = cross_p * cross_sell.per_row(columns["next_best_product"])
    tier = risk_tier(churn_p)
    return {
        "risk_tier": tier,
        "arr_at_risk": np.round(arr * churn_p, 2),
        "expected_expansion": np.round(expansion, 2),
        "expected_cross_sell_arr": np.round(cross_arr, 2),
        "play": suggested_play(tier, upsell_p, cross_p, expansion, cross_arr),
    }


def value_accounts(frame: pd.DataFrame, upsell: ValueModel, cross_sell: ValueModel
                   ) -> pd.DataFrame:
    """`value_columns` on a DataFrame (batch scoring, Spark's mapInPandas)."""
    columns = {c: frame[c].to_numpy(dtype=object if c in ("segment", "next_best_product")
                                     else "float64", na_value=None if c in (
                                         "segment", "next_best_product") else np.nan)
               for c in INPUT_COLUMNS}
    out = frame.copy()
    for name, values in value_columns(columns, upsell, cross_sell).items():
        out[name] = values
    return out
