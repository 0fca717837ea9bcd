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
    # early stopping watches it; no second metric: LightGBM would compute it on the validation
    # rows after every tree (an AUC sorts them: ~15 % of a fold fit at 100k accounts), unread
    "metric": "binary_logloss",
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
# Rows each tree is grown on, at most (through bagging_fraction; see `bagging_fraction`).
ROWS_PER_TREE = 200_000
NUM_BOOST_ROUND = 2000
EARLY_STOPPING_ROUNDS = 100
# Books above this many training rows grow fewer, larger steps (see `book_params`); every book
# at or below it (the demo, the tests, 10,000 accounts x 17 dates) is fitted as it always was.
LARGE_BOOK_ROWS = 250_000
MAX_LEARNING_RATE = 0.1


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


def model_matrix(df: pd.DataFrame, schema: FeatureSchema) -> np.ndarray:
    """The features as one C-ordered float64 matrix in ``schema.columns`` order: numerics as
    numbers, categoricals as the position of their level in the schema (NaN: missing, or a
    level the schema does not know).

    These are the numbers LightGBM itself builds from a model frame (it turns pandas
    categoricals into their codes) and the ones the served model builds
    (`pyfunc_model.PropensityModel.matrix`), so a booster fitted on this matrix scores model
    frames and served rows alike. Built column by column into one array: no whole-frame copy.
    float64, not float32: ratio features (seat utilisation, usage trends) are not exact in
    float32, and rounded training values would move LightGBM's bin edges away from the values
    the served model sees; the matrix of 846 k rows x 81 features is 0.55 GB. (The training
    rows of a book above 250,000 rows are held in float32 instead: `matrix_dtype`.)
    Same errors as `to_model_frame` (missing columns, text in a numeric column).
    """
    _require(df, schema.columns)
    out = np.empty((len(df), len(schema.columns)), dtype="float64")
    for j, col in enumerate(schema.numeric):
        try:
            out[:, j] = _as_float(df[col], errors="raise")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"numeric feature {col!r} holds non-numeric values: {exc}") from exc
    for j, (col, levels) in enumerate(schema.categorical.items(), start=len(schema.numeric)):
        out[:, j] = level_codes(df[col], levels)
    return out


def level_codes(s: pd.Series, levels: list[str]) -> np.ndarray:
    """Positions of ``s``'s values among ``levels`` as floats, NaN for missing or unknown."""
    if isinstance(s.dtype, pd.CategoricalDtype) and list(s.cat.categories) == list(levels):
        codes = s.cat.codes.to_numpy()  # already a model frame's column: no text round trip
    else:
        codes = _as_category(s, levels).codes
    out = codes.astype("float64")
    out[codes < 0] = np.nan
    return out


def lightgbm_params(n_rows: int, seed: int, params: dict | None = None
                    ) -> tuple[dict, int, int]:
    """(LightGBM params, boosting rounds, early-stopping patience) of a fit on ``n_rows``.

    `params` override the defaults (`num_boost_round` and `early_stopping_rounds` too). Threads:
    1 below 100k training rows, else 2, never "all cores": the same data, params and seed give
    the same model on any machine. ``feature_pre_filter`` is off because the Dataset is built
    once and reused by fits of different sizes (`lightgbm_dataset`): LightGBM's pre-filter
    would drop features by the first fit's leaf size and refuse a smaller one later.
    """
    merged = {**DEFAULT_PARAMS, **(params or {})}
    rounds = int(merged.pop("num_boost_round", NUM_BOOST_ROUND))
    patience = int(merged.pop("early_stopping_rounds", EARLY_STOPPING_ROUNDS))
    banned = {"is_unbalance", "scale_pos_weight"} & set(merged)
    if banned:
        raise ValueError(f"{', '.join(sorted(banned))} distort probabilities; calibrate instead")
    merged["seed"] = seed
    merged.setdefault("min_data_in_leaf", min_leaf_rows(n_rows))
    # fixed by data size, never "all cores", so that the same data gives the same model anywhere
    merged.setdefault("num_threads", 1 if n_rows < SMALL_FIT_ROWS else 2)
    merged["feature_pre_filter"] = False
    if "bagging_fraction" not in (params or {}):
        merged["bagging_fraction"] = bagging_fraction(n_rows, merged["bagging_fraction"])
    return merged, rounds, patience


def bagging_fraction(n_rows: int, default: float = DEFAULT_PARAMS["bagging_fraction"]) -> float:
    """The share of the training rows each tree is grown on: ``default`` (0.8), or fewer at
    large books so that a tree sees at most ``ROWS_PER_TREE`` rows.

    A tree's cost is its histograms, linear in the rows it sees; at 1.2 M rows (100,000
    accounts x 17 dates) every tree on 80 % of them made a fit 130-210 CPU-s. 200,000 rows
    per tree (stochastic gradient boosting, Friedman 2002) still fill a 15-leaf tree's leaves
    of 200 rows a hundred times over; all rows still get their gradients and scores each round.
    Below 250,000 rows (every demo and test book) the fraction stays 0.8: same models.
    """
    if n_rows <= 0:
        return default
    return float(min(default, ROWS_PER_TREE / n_rows))


def book_params(n_rows: int) -> dict:
    """The learning rate and early-stopping patience of every tree fit of a book of
    ``n_rows`` training rows (its folds and its refit alike): ``{}`` (the defaults, 0.03 and
    100 trees) up to ``LARGE_BOOK_ROWS``, then a learning rate growing with the rows,
    ``0.03 x n_rows / 250,000``, up to ``MAX_LEARNING_RATE`` (0.1, LightGBM's own default),
    and a patience of the same total step, ``100 x 0.03 / rate`` trees (30 at 0.1).

    Why: a fit's cost is its trees times the cost of a tree, and a tree's cost is linear in
    the rows (their gradients and scores, every round, bagged or not). At 1.2 M rows (100,000
    accounts x 17 dates) 4-leaf trees at 0.03 stopped after 700-1,200 trees per fold and the
    refit grew ~2,000: 126 s of wall on two threads. A rate proportional to the rows keeps a
    fit's trees times rows about what it is at 250,000 rows until the cap. 0.1 is the usual
    upper end of shrinkage (Friedman 2001 advises at most 0.1); a smaller rate buys little
    once the rows are many (measured at 100,000 accounts: docs/models.md), and early stopping
    still picks the number of trees on each fold's block. The patience scales with
    the step so that a stop means the same flat stretch of the loss (3 learning-rate units).
    One rate per book, not per fit: the refit's trees are the folds' best iterations scaled
    by rows, which only holds at the folds' own rate.
    """
    base = DEFAULT_PARAMS["learning_rate"]
    if n_rows <= LARGE_BOOK_ROWS:
        return {}
    rate = float(min(MAX_LEARNING_RATE, base * n_rows / LARGE_BOOK_ROWS))
    return {"learning_rate": rate,
            "early_stopping_rounds": max(1, round(EARLY_STOPPING_ROUNDS * base / rate))}


def matrix_dtype(n_rows: int) -> str:
    """The float type of a training matrix of ``n_rows`` rows: float64 up to
    ``LARGE_BOOK_ROWS`` (every demo and test book: the same numbers, the same models as
    always), float32 above.

    Why: at 100,000 accounts x 17 dates cross-sell's 2.7 M candidate rows x 83 features are
    1.78 GB in float64, more than half of a 3 GB fit. float32 keeps every count exactly (57
    of the 81 features are whole numbers below 2^24) and the ratios and amounts to ~7
    significant digits. LightGBM bins the float32 values; its split thresholds fall between
    two distinct float32 values, so a served float64 value lands on the side its rounded
    training value did. The logistic regression reads them as float64 (its design is
    float64); its medians and coefficients move in the 7th digit. Only the training matrix:
    test and served rows stay float64.
    """
    return "float64" if n_rows <= LARGE_BOOK_ROWS else "float32"


def lightgbm_dataset(x: np.ndarray, y, schema: FeatureSchema, seed: int,
                     params: dict | None = None) -> lightgbm.Dataset:
    """A constructed LightGBM Dataset over the rows of ``x`` (a `model_matrix`).

    LightGBM bins every feature here, once: the bin edges come from (a seeded sample of up to
    200,000 of) these rows' feature values, never from labels. Fits on a part of the rows take
    ``dataset.subset(rows)``, which copies the binned rows and reuses the bins instead of
    binning again. The Dataset keeps no reference to ``x`` once constructed (the caller owns
    the matrix); categoricals are declared by name, with the schema's levels recorded as
    LightGBM's pandas categories so that the booster scores model frames the same way.
    """
    import lightgbm as lgb

    merged, _, _ = lightgbm_params(len(x), seed, params)
    dataset = lgb.Dataset(
        x,
        label=np.asarray(y, dtype="float64"),
        feature_name=list(schema.columns),
        categorical_feature=list(schema.categorical),
        params=merged,
        free_raw_data=True,
    )
    dataset.pandas_categorical = [list(levels) for levels in schema.categorical.values()]
    return dataset.construct()


def train_booster(
    train: lightgbm.Dataset,
    n_train: int,
    valid: lightgbm.Dataset | None,
    seed: int,
    params: dict | None = None,
) -> lightgbm.Booster:
    """Boost on ``train`` (``n_train`` rows: the leaf size and threads follow it), early-stopped
    on ``valid``'s binary log loss (``valid=None``: exactly ``num_boost_round`` trees, no early
    stopping: the refit).

    Class imbalance is deliberately not reweighted (no `is_unbalance` / `scale_pos_weight`):
    weighting the rare class inflates every probability and buys little ranking (AUC) in
    return, so calibration would only have to undo it. Log loss on the natural class mix
    already gives near-calibrated scores; the held-out calibration step removes what is left.
    """
    import lightgbm as lgb

    merged, rounds, patience = lightgbm_params(n_train, seed, params)
    if valid is None:
        return lgb.train(merged, train, num_boost_round=rounds)
    return lgb.train(
        merged,
        train,
        num_boost_round=rounds,
        valid_sets=[valid],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(patience, first_metric_only=True, verbose=False)],
    )


def fit_lightgbm(
    train: pd.DataFrame,
    y_train,
    valid: pd.DataFrame | None,
    y_valid,
    schema: FeatureSchema,
    seed: int,
    params: dict | None = None,
) -> lightgbm.Booster:
    """Gradient-boosted trees on frames, early-stopped on the validation frame's binary log
    loss (``valid=None``: exactly ``num_boost_round`` trees: the refit).

    One-off fits; the cross-validation (`training.selection`) builds one Dataset for all its
    fits instead. The bins come from ``train``'s rows; ``valid`` is binned with them.
    Categoricals go to LightGBM natively, as the schema's level codes. ``train``'s rows are
    the book (`book_params`; ``params`` override it). See `train_booster` and
    `lightgbm_params` for the rest.
    """
    params = {**book_params(len(train)), **(params or {})}
    dtrain = lightgbm_dataset(model_matrix(train, schema), y_train, schema, seed, params)
    dvalid = None
    if valid is not None:
        dvalid = dtrain.create_valid(model_matrix(valid, schema),
                                     label=np.asarray(y_valid, dtype="float64"))
    return train_booster(dtrain, len(train), dvalid, seed, params)


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
