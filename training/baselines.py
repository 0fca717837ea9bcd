"""The two baselines the model must beat: a regularised logistic regression and a health score.

The logistic regression is what a careful analyst fits in an afternoon; the health score is
what customer-success tools ship (a fixed, hand-weighted scorecard). If LightGBM does not beat
both, the extra machinery is not worth running.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from training.models import FeatureSchema, to_model_frame

LOGISTIC_C = 0.1
LOGISTIC_C_GRID = (0.01, 0.1, 1.0, 10.0)


def logistic_baseline(schema: FeatureSchema, seed: int, tune: bool = False) -> Pipeline:
    """L2 logistic regression over the schema's features, preprocessing included.

    Numerics: median imputation plus a missing-indicator column, then standardisation.
    Categoricals: one-hot over the schema's fixed levels; unknown or missing levels give all
    zeros. The first step is `to_model_frame`, so `fit` / `predict_proba` take raw feature
    frames (extra columns ignored). C is fixed at 0.1 by default: on standardised features and
    the tens of thousands of rows a snapshot grid holds, C between 0.01 and 10 moves AUC by
    well under a point, and a fixed C keeps the baseline fast and deterministic. `tune=True`
    chooses C from (0.01, 0.1, 1, 10) by 5-fold cross-validated log loss instead, for small
    tables where regularisation matters.
    """
    numeric = Pipeline(
        [
            (
                "impute",
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            ),
            ("scale", StandardScaler()),
        ]
    )
    columns = ColumnTransformer(
        [
            ("numeric", numeric, list(schema.numeric)),
            (
                "categorical",
                OneHotEncoder(
                    categories=[list(v) for v in schema.categorical.values()],
                    handle_unknown="ignore",
                ),
                list(schema.categorical),
            ),
        ],
        remainder="drop",
    )
    if tune:
        model = LogisticRegressionCV(
            Cs=list(LOGISTIC_C_GRID),
            cv=5,
            scoring="neg_log_loss",
            max_iter=2000,
            l1_ratios=(0.0,),
            use_legacy_attributes=False,
            random_state=seed,  # plain L2
        )
    else:
        model = LogisticRegression(C=LOGISTIC_C, max_iter=2000, random_state=seed)
    return Pipeline(
        [
            ("frame", FunctionTransformer(to_model_frame, kw_args={"schema": schema})),
            ("columns", columns),
            ("model", model),
        ]
    )


@dataclass(frozen=True)
class Signal:
    """One scorecard line: value bands mapped to a 0-100 sub-score (100 = good for the task)."""

    column: str
    weight: float
    edges: tuple[float, ...]  # band i is edges[i-1] <= value < edges[i]
    scores: tuple[float, ...]  # one more than edges


NEUTRAL = 50.0

# Churn card: sub-score 100 = healthy. Risk = 1 - weighted health / 100.
CHURN_CARD: tuple[Signal, ...] = (
    Signal("usage_trend_30d", 15, (0.5, 0.8, 0.95, 1.1), (0, 25, 50, 75, 100)),
    Signal("seat_utilisation_30d", 15, (0.3, 0.5, 0.7, 0.85), (0, 25, 50, 75, 100)),
    Signal("days_since_last_event", 10, (3, 7, 14, 30), (100, 75, 50, 25, 0)),
    Signal("nps_last", 10, (7, 9), (0, 50, 100)),
    Signal("escalations_90d", 8, (1, 2), (100, 50, 0)),
    Signal("tickets_90d", 4, (3, 6, 10), (100, 75, 50, 25)),
    Signal("champions", 7, (1, 2), (0, 60, 100)),
    Signal("champion_departed_90d", 6, (1,), (100, 0)),
    Signal("executive_sponsor_present", 5, (1,), (30, 100)),
    Signal("days_since_last_qbr", 5, (90, 180, 365), (100, 60, 30, 0)),
    Signal("cancellation_notice", 10, (1,), (100, 0)),
    Signal("days_to_renewal", 5, (30, 90, 180), (25, 50, 75, 100)),
)

# Expansion card (upsell, cross-sell): sub-score 100 = ready to buy more.
EXPANSION_CARD: tuple[Signal, ...] = (
    Signal("seat_utilisation_30d", 30, (0.5, 0.7, 0.85, 0.95), (0, 25, 50, 75, 100)),
    Signal("usage_trend_30d", 25, (0.9, 1.0, 1.1, 1.25), (0, 25, 50, 75, 100)),
    Signal("nps_last", 15, (7, 9), (0, 50, 100)),
    Signal("executive_sponsor_present", 15, (1,), (0, 100)),
    Signal("champions", 10, (1, 2), (0, 50, 100)),
    Signal("cancellation_notice", 5, (1,), (100, 0)),
)

TASK_CARDS = {"churn": CHURN_CARD, "upsell": EXPANSION_CARD, "cross-sell": EXPANSION_CARD}


def health_score(df: pd.DataFrame, task: str) -> np.ndarray:
    """A customer-success scorecard in [0, 1]: churn risk for "churn", expansion readiness for
    "upsell" / "cross-sell". No fitting; the rule-based baseline the model must beat.

    Each signal is banded into a 0-100 sub-score (100 = healthy for churn, ready for
    expansion); a missing value (or column) scores a neutral 50; the card is the weighted mean.
    A missing `nps_last` with `detractor_flag` = 1 scores as a detractor. Bands are
    lower-inclusive: "0.5-0.8" means 0.5 <= x < 0.8. (`card_table` renders these tables from
    the cards; a test keeps them in step.)

    Churn card, risk = 1 - card / 100:

    | signal | weight | sub-score by band |
    |---|---:|---|
    | usage_trend_30d | 15 | <0.5: 0, 0.5-0.8: 25, 0.8-0.95: 50, 0.95-1.1: 75, >=1.1: 100 |
    | seat_utilisation_30d | 15 | <0.3: 0, 0.3-0.5: 25, 0.5-0.7: 50, 0.7-0.85: 75, >=0.85: 100 |
    | days_since_last_event | 10 | <3: 100, 3-7: 75, 7-14: 50, 14-30: 25, >=30: 0 |
    | nps_last | 10 | <7: 0, 7-9: 50, >=9: 100 |
    | escalations_90d | 8 | <1: 100, 1-2: 50, >=2: 0 |
    | tickets_90d | 4 | <3: 100, 3-6: 75, 6-10: 50, >=10: 25 |
    | champions | 7 | <1: 0, 1-2: 60, >=2: 100 |
    | champion_departed_90d | 6 | <1: 100, >=1: 0 |
    | executive_sponsor_present | 5 | <1: 30, >=1: 100 |
    | days_since_last_qbr | 5 | <90: 100, 90-180: 60, 180-365: 30, >=365: 0 |
    | cancellation_notice | 10 | <1: 100, >=1: 0 |
    | days_to_renewal | 5 | <30: 25, 30-90: 50, 90-180: 75, >=180: 100 |

    Expansion card (upsell, cross-sell), readiness = card / 100:

    | signal | weight | sub-score by band |
    |---|---:|---|
    | seat_utilisation_30d | 30 | <0.5: 0, 0.5-0.7: 25, 0.7-0.85: 50, 0.85-0.95: 75, >=0.95: 100 |
    | usage_trend_30d | 25 | <0.9: 0, 0.9-1: 25, 1-1.1: 50, 1.1-1.25: 75, >=1.25: 100 |
    | nps_last | 15 | <7: 0, 7-9: 50, >=9: 100 |
    | executive_sponsor_present | 15 | <1: 0, >=1: 100 |
    | champions | 10 | <1: 0, 1-2: 50, >=2: 100 |
    | cancellation_notice | 5 | <1: 100, >=1: 0 |
    """
    card = _card(task)
    total = np.zeros(len(df))
    for signal in card:
        total += signal.weight * _sub_score(df, signal)
    card_score = total / sum(s.weight for s in card)
    return 1.0 - card_score / 100.0 if task == "churn" else card_score / 100.0


def card_table(task: str) -> str:
    """The task's scorecard as the Markdown rows of the table in `health_score`'s docstring."""
    rows = ["| signal | weight | sub-score by band |", "|---|---:|---|"]
    for s in _card(task):
        lows = ("",) + tuple(f"{e:g}" for e in s.edges)
        highs = tuple(f"{e:g}" for e in s.edges) + ("",)
        bands = [
            f"<{hi}" if not lo else f">={lo}" if not hi else f"{lo}-{hi}"
            for lo, hi in zip(lows, highs, strict=True)
        ]
        text = ", ".join(f"{b}: {v:g}" for b, v in zip(bands, s.scores, strict=True))
        rows.append(f"| {s.column} | {s.weight:g} | {text} |")
    return "\n".join(rows)


def _card(task: str) -> tuple[Signal, ...]:
    card = TASK_CARDS.get(task)
    if card is None:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASK_CARDS)}")
    return card


def _column(df: pd.DataFrame, name: str) -> np.ndarray:
    if name not in df.columns:
        return np.full(len(df), np.nan)
    return (
        pd.to_numeric(df[name], errors="coerce")
        .astype("Float64")
        .to_numpy(dtype="float64", na_value=np.nan)
    )


def _sub_score(df: pd.DataFrame, signal: Signal) -> np.ndarray:
    values = _column(df, signal.column)
    bands = np.digitize(np.nan_to_num(values, nan=0.0), signal.edges, right=False)
    scores = np.where(np.isnan(values), NEUTRAL, np.asarray(signal.scores, dtype="float64")[bands])
    if signal.column == "nps_last":  # no NPS answer on record but flagged a detractor
        detractor = _column(df, "detractor_flag") >= 1
        scores = np.where(np.isnan(values) & detractor, 0.0, scores)
    return scores
