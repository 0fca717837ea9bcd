"""The three candidates of a "bring your own table" fit, with defaults for small tables.

- ``lightgbm``: gradient-boosted trees with defaults meant for a few thousand rows, no per-table
  tuning: learning rate 0.05, 15 leaves, at least 20 rows per leaf, 80 % of the features per
  tree, no row bagging, no class reweighting (it distorts probabilities). The number of trees is
  early-stopped (log loss, patience 50) on a stratified 20 % inner split of the training rows,
  then the model is refitted on all training rows with 1.25x that many trees (the 20 % it
  gets back). Categoricals are split one level against the rest: LightGBM's many-vs-many
  categorical splits overfit a 51-level column on 5,000 rows (mlc_churn, mean 5-fold CV AUC
  over three seeds: 0.928 many-vs-many, 0.931 one-vs-rest). The inner split is random even
  when the outer evaluation is a time split: it only sizes the model.
- ``logistic``: the regularised logistic-regression baseline of ``training.baselines`` (median
  imputation with missing indicators and standardisation for numerics, one-hot categoricals,
  L2 with C chosen by 5-fold CV log loss).
- ``blend``: the mean of the two models' probabilities. Both are fitted on log loss without
  reweighting, so their scores are probabilities on one scale and the mean is one too; the
  chosen model is calibrated afterwards whichever it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from training.models import FeatureSchema

if TYPE_CHECKING:
    import lightgbm
    from sklearn.pipeline import Pipeline

CANDIDATES = ("logistic", "lightgbm", "blend")  # simplest first: ties go to the earlier one

LGBM_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "metric": "binary_logloss",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "max_cat_to_onehot": 1_000_000,  # every categorical split is one level vs the rest
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
MAX_ROUNDS = 2000
PATIENCE = 50
INNER_VALID_SHARE = 0.2
REFIT_FACTOR = 1.0 / (1.0 - INNER_VALID_SHARE)


@dataclass
class LightGBMModel:
    booster: lightgbm.Booster
    rounds: int
    columns: list[str]  # the model frame's names; the booster's are `lgbm_names(columns)`

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        frame = X[self.columns].set_axis(self.booster.feature_name(), axis=1)
        return np.asarray(self.booster.predict(frame), dtype="float64")

    def importance(self) -> pd.Series:
        """Share of the total split gain per feature."""
        gain = self.booster.feature_importance("gain")
        return _normalised(pd.Series(gain, index=self.columns, dtype="float64"))


@dataclass
class LogisticModel:
    pipeline: Pipeline
    schema: FeatureSchema
    importances: pd.Series  # measured on the training rows at fit time

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(X)[:, 1], dtype="float64")

    def importance(self) -> pd.Series:
        return self.importances


@dataclass
class BlendModel:
    parts: tuple[LightGBMModel, LogisticModel]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.mean([part.predict(X) for part in self.parts], axis=0)

    def importance(self) -> pd.Series:
        return _normalised(sum(part.importance() for part in self.parts))


Model = LightGBMModel | LogisticModel | BlendModel


def lgbm_params(seed: int, n_jobs: int) -> dict[str, Any]:
    return {**LGBM_PARAMS, "seed": seed, "num_threads": n_jobs}


def fit_lightgbm(
    X: pd.DataFrame, y: np.ndarray, seed: int, n_jobs: int = 1, rounds: int | None = None
) -> LightGBMModel:
    """LightGBM on all of ``X``: ``rounds`` trees, or early-stopped as the module says."""
    import lightgbm as lgb

    params = lgbm_params(seed, n_jobs)
    columns = list(X.columns)
    X = X.set_axis(lgbm_names(columns), axis=1)
    if rounds is None:
        rounds = _early_stopped_rounds(X, y, params, seed)
    booster = lgb.train(params, lgb.Dataset(X, label=np.asarray(y, dtype="float64")),
                        num_boost_round=rounds)
    return LightGBMModel(booster, rounds, columns)


def lgbm_names(columns: list[str]) -> list[str]:
    """Feature names LightGBM accepts (it refuses JSON characters such as ``,`` ``:`` ``"``):
    anything but letters, digits and ``_`` becomes ``_``; a clash gets the column's position."""
    names = [re.sub(r"[^0-9A-Za-z_]", "_", str(c)) for c in columns]
    clashes = {n for n in names if names.count(n) > 1}
    return [f"{n}__{i}" if n in clashes else n for i, n in enumerate(names)]


def _early_stopped_rounds(X: pd.DataFrame, y: np.ndarray, params: dict, seed: int) -> int:
    import lightgbm as lgb
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    fit_rows, valid_rows = train_test_split(rows, test_size=INNER_VALID_SHARE, stratify=y,
                                            random_state=seed)
    y = np.asarray(y, dtype="float64")
    dtrain = lgb.Dataset(X.iloc[fit_rows], label=y[fit_rows])
    dvalid = lgb.Dataset(X.iloc[valid_rows], label=y[valid_rows], reference=dtrain)
    booster = lgb.train(params, dtrain, num_boost_round=MAX_ROUNDS, valid_sets=[dvalid],
                        callbacks=[lgb.early_stopping(PATIENCE, verbose=False)])
    return max(1, int(round(booster.best_iteration * REFIT_FACTOR)))


def fit_logistic(X: pd.DataFrame, y: np.ndarray, schema: FeatureSchema, seed: int) -> LogisticModel:
    from training.baselines import logistic_baseline

    pipeline = logistic_baseline(schema, seed, tune=True)
    pipeline.fit(X, np.asarray(y, dtype=np.int64))
    return LogisticModel(pipeline, schema, _logistic_importance(pipeline, schema, X))


def _logistic_importance(pipeline: Pipeline, schema: FeatureSchema, X: pd.DataFrame) -> pd.Series:
    """Share per source column of the spread (standard deviation over the training rows) of
    its part of the linear score: a numeric's coefficient with its missing indicator, a
    categorical's levels together. Unlike summed |coefficients| this does not grow with the
    number of levels."""
    from training.baselines import design_sources

    design = pipeline[:-1].transform(X)
    coef = pipeline.named_steps["model"].coef_[0]
    by_column: dict[str, list[int]] = {}
    for i, source in enumerate(design_sources(pipeline, schema)):
        by_column.setdefault(source, []).append(i)
    spread = pd.Series(0.0, index=schema.columns)
    for col, idx in by_column.items():
        part = design[:, idx] @ coef[idx]
        spread[col] = float(np.std(np.asarray(part, dtype="float64")))
    return _normalised(spread)


def fit_candidate(
    name: str, X: pd.DataFrame, y: np.ndarray, schema: FeatureSchema, seed: int,
    n_jobs: int = 1, rounds: int | None = None,
) -> Model:
    """One candidate fitted on all of ``X``."""
    if name == "lightgbm":
        return fit_lightgbm(X, y, seed, n_jobs, rounds)
    if name == "logistic":
        return fit_logistic(X, y, schema, seed)
    if name == "blend":
        return BlendModel((fit_lightgbm(X, y, seed, n_jobs, rounds),
                           fit_logistic(X, y, schema, seed)))
    raise ValueError(f"unknown candidate {name!r}; choose from {', '.join(CANDIDATES)}")


def _normalised(s: pd.Series) -> pd.Series:
    total = float(s.sum())
    s = s / total if total > 0 else s * 0.0
    order = sorted(s.index, key=lambda k: (-s[k], str(k)))
    return s.loc[order]
