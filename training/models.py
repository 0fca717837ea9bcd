"""The propensity estimator: LightGBM on a fixed feature schema.

The schema (numeric columns, categorical columns with their levels) is fixed at training time and
travels with the model, so that a level unseen in training means "missing" at scoring time
instead of silently shifting category codes. `training/pyfunc_model.py` applies the same rules
when serving (it may not import this module); a test pins the two together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # lightgbm costs an import; only the functions that fit or predict need it
    import lightgbm

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "metric": ["binary_logloss", "auc"],  # early stopping watches the first one
    # Smaller, slower trees: on 20k generated accounts x 24 snapshots they scored higher on the
    # validation slice than 31 leaves at 0.05 (upsell ROC AUC +0.004, churn +0.001). The leaf
    # size scales with the data (see min_leaf_rows).
    "learning_rate": 0.03,
    "num_leaves": 15,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "deterministic": True,
    "force_row_wise": True,  # a fixed histogram layout is part of determinism
    "verbosity": -1,
}
SMALL_FIT_ROWS = 100_000  # below this one thread is faster than two (thread overhead)
NUM_BOOST_ROUND = 2000
EARLY_STOPPING_ROUNDS = 100


@dataclass(frozen=True)
class FeatureSchema:
    """Model inputs: float numerics and categoricals with levels fixed (sorted) at training."""

    numeric: list[str]
    categorical: dict[str, list[str]] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        """Feature order of the model frame: numerics, then categoricals."""
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict:
        return {
            "numeric": list(self.numeric),
            "categorical": {k: list(v) for k, v in self.categorical.items()},
            "columns": self.columns,
        }

    @classmethod
    def from_dict(cls, d: dict) -> FeatureSchema:
        schema = cls(list(d["numeric"]), {k: list(v) for k, v in d.get("categorical", {}).items()})
        if "columns" in d and list(d["columns"]) != schema.columns:
            raise ValueError("schema 'columns' disagree with its numeric and categorical lists")
        return schema

    @classmethod
    def infer(cls, df: pd.DataFrame, feature_cols: list[str]) -> FeatureSchema:
        """String, object and category columns are categorical; everything else is numeric."""
        _require(df, feature_cols)
        numeric: list[str] = []
        categorical: dict[str, list[str]] = {}
        for col in feature_cols:
            s = df[col]
            if _is_categorical_dtype(s):
                categorical[col] = sorted({str(v) for v in s.dropna().unique()})
            else:
                numeric.append(col)
        return cls(numeric, categorical)


def _is_categorical_dtype(s: pd.Series) -> bool:
    return (
        isinstance(s.dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(s.dtype)
        or s.dtype == object
    )


def _require(df: pd.DataFrame, cols: list[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"feature columns missing from the frame: {', '.join(missing)}")


def to_model_frame(df: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """The frame the model sees: float64 numerics, Categoricals with the schema's levels.

    Extra columns are dropped; a level not in the schema becomes NaN (LightGBM's "missing").
    Text in a numeric column is an error here (training data must be clean).
    """
    _require(df, schema.columns)
    out = {}
    for col in schema.numeric:
        try:
            out[col] = _as_float(df[col], errors="raise")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"numeric feature {col!r} holds non-numeric values: {exc}") from exc
    for col, levels in schema.categorical.items():
        out[col] = _as_category(df[col], levels)
    return pd.DataFrame(out, index=df.index)


def _as_float(s: pd.Series, errors: str) -> np.ndarray:
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        s = pd.to_numeric(s, errors=errors)
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_extension_array_dtype(s.dtype):
        s = s.astype("Float64")
    return s.to_numpy(dtype="float64", na_value=np.nan)


def _as_category(s: pd.Series, levels: list[str]) -> pd.Categorical:
    text = s.astype(object).where(s.notna(), None).map(lambda v: None if v is None else str(v))
    return pd.Categorical(text, categories=levels)


def min_leaf_rows(n_rows: int) -> int:
    """Rows per leaf: 0.1 % of the training rows, between 20 and 200. Large leaves regularise
    the 100k+ row grids; small books (a demo, a test) still need room to split."""
    return int(min(200, max(20, n_rows // 1000)))


def fit_lightgbm(
    train: pd.DataFrame,
    y_train,
    valid: pd.DataFrame | None,
    y_valid,
    schema: FeatureSchema,
    seed: int,
    params: dict | None = None,
) -> lightgbm.Booster:
    """Gradient-boosted trees, early-stopped on the validation frame's binary log loss
    (``valid=None``: exactly ``num_boost_round`` trees, no early stopping: the refit).

    Categoricals go to LightGBM natively (pandas category dtype with the schema's levels).
    Class imbalance is deliberately not reweighted (no `is_unbalance` / `scale_pos_weight`):
    weighting the rare class inflates every probability and buys little ranking (AUC) in
    return, so calibration would only have to undo it. Log loss on the natural class mix
    already gives near-calibrated scores; the held-out calibration step removes what is left.
    `params` override the defaults (`num_boost_round` and `early_stopping_rounds` too). Threads:
    1 below 100k training rows, else 2, never "all cores": the same data, params and seed give
    the same model on any machine.
    """
    import lightgbm as lgb

    merged = {**DEFAULT_PARAMS, **(params or {})}
    rounds = int(merged.pop("num_boost_round", NUM_BOOST_ROUND))
    patience = int(merged.pop("early_stopping_rounds", EARLY_STOPPING_ROUNDS))
    banned = {"is_unbalance", "scale_pos_weight"} & set(merged)
    if banned:
        raise ValueError(f"{', '.join(sorted(banned))} distort probabilities; calibrate instead")
    merged["seed"] = seed
    merged.setdefault("min_data_in_leaf", min_leaf_rows(len(train)))
    # fixed by data size, never "all cores", so that the same data gives the same model anywhere
    merged.setdefault("num_threads", 1 if len(train) < SMALL_FIT_ROWS else 2)
    cats = list(schema.categorical)
    dtrain = lgb.Dataset(
        to_model_frame(train, schema),
        label=np.asarray(y_train, dtype="float64"),
        categorical_feature=cats,
        free_raw_data=False,
    )
    if valid is None:
        return lgb.train(merged, dtrain, num_boost_round=rounds)
    dvalid = lgb.Dataset(
        to_model_frame(valid, schema),
        label=np.asarray(y_valid, dtype="float64"),
        categorical_feature=cats,
        reference=dtrain,
    )
    return lgb.train(
        merged,
        dtrain,
        num_boost_round=rounds,
        valid_sets=[dvalid],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(patience, first_metric_only=True, verbose=False)],
    )


def _frame_for(booster: lightgbm.Booster, frame: pd.DataFrame) -> pd.DataFrame:
    names = booster.feature_name()
    _require(frame, names)
    return frame[names]


def predict_raw(booster: lightgbm.Booster, frame: pd.DataFrame) -> np.ndarray:
    """Uncalibrated probabilities from a model frame (`to_model_frame`), best iteration."""
    return np.asarray(booster.predict(_frame_for(booster, frame)), dtype="float64")


def contributions(booster: lightgbm.Booster, frame: pd.DataFrame) -> np.ndarray:
    """Per-row SHAP values in log-odds (TreeSHAP, `pred_contrib`): one column per feature in
    `booster.feature_name()` order, then the bias; each row sums to the raw score."""
    return np.asarray(booster.predict(_frame_for(booster, frame), pred_contrib=True))


def importance(booster: lightgbm.Booster) -> pd.DataFrame:
    """Total gain and split count per feature, most gain first."""
    table = pd.DataFrame(
        {
            "feature": booster.feature_name(),
            "gain": booster.feature_importance("gain"),
            "split": booster.feature_importance("split"),
        }
    )
    return table.sort_values(["gain", "feature"], ascending=[False, True], ignore_index=True)
