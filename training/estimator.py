"""The chosen propensity model: LightGBM, logistic regression, or a blend of the two.

One object for the three kinds, so that training scores, explains and logs whichever won the
cross-validation (`training.selection`) the same way. Scores are on the log-odds scale:
``log_odds = w * tree + (1 - w) * linear`` with ``w`` = 1 (lightgbm), 0 (logistic) or the
blend's weight; the raw probability is its logistic function, calibrated afterwards.

The logistic part is exported as plain numbers (`export_linear`) so the served model
(`training/pyfunc_model.py`, which may not import this project) computes the same log-odds with
numpy; a test pins the two to the sklearn pipeline's ``decision_function``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from training.baselines import design_numbers
from training.models import FeatureSchema

if TYPE_CHECKING:
    import lightgbm
    from sklearn.pipeline import Pipeline

KINDS = ("logistic", "lightgbm", "blend")  # simplest first


def export_linear(pipeline: Pipeline, schema: FeatureSchema, train: pd.DataFrame) -> dict:
    """The fitted `training.baselines.logistic_baseline` pipeline as JSON-ready numbers.

    ``clip``: the bound on a standardised value (absent: none, as in pipelines before it).
    ``numeric``: per column the imputation ``median``, the scaler's ``mean`` and ``scale`` and
    the ``coef`` of the standardised value, and ``missing`` (the missing indicator's ``mean``,
    ``scale``, ``coef``; null when the column had no missing value in training, so sklearn made
    no indicator). ``categorical``: per column ``levels`` (level -> coef; unknown or missing: 0)
    and ``centre``, the training rows' mean of that column's term, so that contributions are
    centred and the bias carries ``intercept`` plus the centres. ``train``: the training frame
    (for the centres).
    """
    numbers = design_numbers(pipeline)
    clip = numbers["clip"]
    model = pipeline.named_steps["model"]
    coef = np.asarray(model.coef_[0], dtype="float64")
    n = len(schema.numeric)
    flagged = numbers["flagged"]
    width = n + len(flagged)
    out_numeric: dict[str, dict] = {}
    for j, col in enumerate(schema.numeric):
        missing = None
        if j in flagged:
            m = n + flagged.index(j)
            missing = {"mean": float(numbers["mean"][m]), "scale": float(numbers["scale"][m]),
                       "coef": float(coef[m])}
        out_numeric[col] = {"median": float(numbers["median"][j]),
                            "mean": float(numbers["mean"][j]),
                            "scale": float(numbers["scale"][j]),
                            "coef": float(coef[j]), "missing": missing}
    design = np.asarray(pipeline[:-1].transform(train), dtype="float64")
    out_categorical: dict[str, dict] = {}
    start = width
    for col, levels in schema.categorical.items():
        idx = slice(start, start + len(levels))
        out_categorical[col] = {
            "levels": {lvl: float(c) for lvl, c in zip(levels, coef[idx], strict=True)},
            "centre": float(np.mean(design[:, idx] @ coef[idx])) if len(design) else 0.0,
        }
        start += len(levels)
    if start != len(coef):
        raise ValueError(f"the logistic pipeline has {len(coef)} coefficients, the schema "
                         f"explains {start}")
    out = {"intercept": float(model.intercept_[0]), "numeric": out_numeric,
           "categorical": out_categorical}
    if clip is not None:
        out["clip"] = clip
    return out


def linear_contributions(linear: dict, frame: pd.DataFrame, schema: FeatureSchema) -> np.ndarray:
    """Per-row terms of the exported linear part on a model frame (`to_model_frame`): one
    column per schema column, then the bias; each row sums to the linear log-odds."""
    out = np.zeros((len(frame), len(schema.columns) + 1))
    bias = linear["intercept"]
    clip = linear.get("clip", np.inf)
    for j, col in enumerate(schema.numeric):
        p = linear["numeric"][col]
        x = frame[col].to_numpy(dtype="float64", na_value=np.nan)
        absent = np.isnan(x)
        z = (np.where(absent, p["median"], x) - p["mean"]) / p["scale"]
        out[:, j] = p["coef"] * np.clip(z, -clip, clip)
        if p["missing"] is not None:
            m = p["missing"]
            out[:, j] += m["coef"] * np.clip((absent - m["mean"]) / m["scale"], -clip, clip)
    for j, (col, levels) in enumerate(schema.categorical.items(), start=len(schema.numeric)):
        p = linear["categorical"][col]
        table = np.array([p["levels"][lvl] for lvl in levels] + [0.0])
        codes = frame[col].cat.codes.to_numpy()  # -1: missing or unknown -> the trailing 0
        out[:, j] = table[codes] - p["centre"]
        bias += p["centre"]
    out[:, -1] = bias
    return out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass
class Estimator:
    """A fitted candidate on a fixed schema. ``booster`` is None for the logistic kind,
    ``linear`` (the sklearn pipeline) and ``linear_export`` None for the lightgbm kind."""

    kind: str
    schema: FeatureSchema
    booster: lightgbm.Booster | None
    linear: Pipeline | None
    linear_export: dict | None
    tree_weight: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if (self.booster is None) != (self.kind == "logistic"):
            raise ValueError(f"a {self.kind} estimator has a booster exactly when it has trees")
        if (self.linear is None) != (self.kind == "lightgbm"):
            raise ValueError(f"a {self.kind} estimator has a linear part exactly when it is "
                             "logistic or a blend")

    @property
    def features(self) -> list[str]:
        """The model's own feature order (contributions' columns)."""
        return self.schema.columns

    def combination(self) -> dict:
        return {"kind": self.kind, "tree_weight": float(self.tree_weight)}

    def log_odds(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw (uncalibrated) log-odds of a model frame."""
        z = np.zeros(len(frame))
        if self.booster is not None:
            z += self.tree_weight * np.asarray(
                self.booster.predict(frame[self.features], raw_score=True), dtype="float64")
        if self.linear is not None:
            z += (1.0 - self.tree_weight) * self.linear.decision_function(frame)
        return z

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Uncalibrated probabilities of a model frame."""
        if self.kind == "lightgbm":  # LightGBM's own transform, bit for bit as before
            return np.asarray(self.booster.predict(frame[self.features]), dtype="float64")
        return _sigmoid(self.log_odds(frame))

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """Per-row contributions in log-odds, one column per feature in `features` order, then
        the bias; each row sums to `log_odds` (TreeSHAP for the trees, centred coefficient
        terms for the linear part, weighted like the scores)."""
        out = np.zeros((len(frame), len(self.features) + 1))
        if self.booster is not None:
            out += self.tree_weight * np.asarray(
                self.booster.predict(frame[self.features], pred_contrib=True))
        if self.linear_export is not None:
            out += (1.0 - self.tree_weight) * linear_contributions(
                self.linear_export, frame, self.schema)
        return out

    def importance(self, frame: pd.DataFrame) -> tuple[list[str], np.ndarray, str]:
        """(features, values, what the values are): total split gain for LightGBM alone, else
        the mean absolute contribution over ``frame``."""
        if self.kind == "lightgbm":
            return (self.booster.feature_name(),
                    np.asarray(self.booster.feature_importance("gain"), dtype="float64"),
                    "Total gain")
        phi = self.contributions(frame)[:, :-1]
        return self.features, np.abs(phi).mean(axis=0), "Mean |contribution| (log-odds)"
