"""The servable propensity model, logged with MLflow's "models from code".

MLflow copies this file into the logged model and runs it at load time, so it must stand alone:
it imports mlflow, lightgbm, numpy and pandas, never this project. Serving loads a model with
`mlflow.pyfunc.load_model("models:/propensity-churn@champion")` and needs nothing else.

Artifacts (written by `training.model_logging.log_propensity_model`):
- `combination`: {"kind": "lightgbm" | "logistic" | "blend", "tree_weight": w}; raw log-odds =
  w * tree + (1 - w) * linear (absent in models logged before it: LightGBM alone);
- `booster`: LightGBM `model_to_string()` text (the lightgbm and blend kinds);
- `linear`: the logistic regression as numbers (the logistic and blend kinds): `intercept`;
  per numeric column `median` (imputation), `mean`, `scale`, `coef` of the standardised value
  and `missing` (its missing indicator's `mean`, `scale`, `coef`, or null), both standardised
  values clipped to +-`clip` (absent in models logged before it: no clipping); per categorical
  column `levels` (level -> coef; missing or unknown: 0) and `centre` (the training mean of
  its term, which the bias carries so that contributions are centred);
- `schema`: {"numeric": [...], "categorical": {col: [levels]}, "columns": [...]};
- `calibrator`: {"method": "isotonic", "x": [...], "y": [...]}, {"method": "sigmoid", "a", "b"}
  or {"method": "identity"};
- `meta`: task, feature catalogue version, horizon (free-form, exposed as `model.meta`).

The frame rules repeat `training.models.to_model_frame` (this file may not import it); a test
pins the two together. Serving is lenient where training is strict: absent feature columns and
text in numeric columns become missing values, unknown categorical levels become missing.
"""

from __future__ import annotations

import json

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd

PROBABILITY = "probability"
REASONS = "reasons"
LOGIT_EPS = 1e-9  # raw scores are clipped to [eps, 1 - eps] before the logit
P_MIN, P_MAX = 1e-6, 1 - 1e-6  # calibrated probabilities stay inside (finite log loss)


def calibrate(p: np.ndarray, calibrator: dict) -> np.ndarray:
    """Apply a calibrator dict exactly as `training.calibration.Calibrator.predict` does
    (a test pins the two): isotonic `np.interp` over (x, y), flat beyond the ends; sigmoid
    `1 / (1 + exp(-(a * logit(p) + b)))`; identity unchanged."""
    p = np.asarray(p, dtype="float64")
    method = calibrator.get("method")
    if method == "identity":
        return p.copy()
    if method == "isotonic":
        out = np.interp(p, np.asarray(calibrator["x"], float), np.asarray(calibrator["y"], float))
    elif method == "sigmoid":
        q = np.clip(p, LOGIT_EPS, 1.0 - LOGIT_EPS)
        z = float(calibrator["a"]) * (np.log(q) - np.log1p(-q)) + float(calibrator["b"])
        out = 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function without overflow
    else:
        raise ValueError(f"unknown calibration method {method!r}")
    return np.clip(out, P_MIN, P_MAX)


def model_frame(df: pd.DataFrame, schema: dict) -> pd.DataFrame:
    """The booster's input: float64 numerics, Categoricals with the training levels."""
    out = {}
    for col in schema["numeric"]:
        out[col] = _as_float(df[col]) if col in df.columns else np.full(len(df), np.nan)
    for col, levels in schema["categorical"].items():
        values = df[col] if col in df.columns else pd.Series([None] * len(df), index=df.index)
        out[col] = _as_category(values, levels)
    return pd.DataFrame(out, index=df.index)


def _as_float(s: pd.Series) -> np.ndarray:
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        s = pd.to_numeric(s, errors="coerce")
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_extension_array_dtype(s.dtype):
        s = s.astype("Float64")
    return s.to_numpy(dtype="float64", na_value=np.nan)


def _as_category(s: pd.Series, levels: list[str]) -> pd.Categorical:
    text = s.astype(object).where(s.notna(), None).map(lambda v: None if v is None else str(v))
    return pd.Categorical(text, categories=levels)


REASON_DIRECTIONS = ("raising", "lowering")


def top_reasons(contrib: np.ndarray, features: list[str], k: int) -> list[str]:
    """Per row, the k largest positive contributions (log-odds), largest first, and the k
    most negative, most negative first (ties keep feature order), as JSON
    `{"raising": [{feature, contribution}], "lowering": [...]}`.

    The reasons rule of `serving.reasons.strongest` (what the API shows), repeated because this
    file may not import the project; a test pins the two."""
    values = contrib[:, : len(features)]  # the last column is the bias
    up = np.argsort(-values, axis=1, kind="stable")[:, :k]
    down = np.argsort(values, axis=1, kind="stable")[:, :k]
    return [
        json.dumps({
            "raising": [{"feature": features[j], "contribution": float(row[j])}
                        for j in ups if row[j] > 0],
            "lowering": [{"feature": features[j], "contribution": float(row[j])}
                         for j in downs if row[j] < 0],
        })
        for row, ups, downs in zip(values, up, down, strict=True)
    ]


class PropensityModel(mlflow.pyfunc.PythonModel):
    """Calibrated probabilities, and on request the k strongest reasons each way per row.

    Besides `predict` (DataFrames, what `mlflow models serve` and `spark_udf` call), a numpy
    path for a server that scores one row in well under a millisecond: `matrix` /
    `matrix_from_records` encode inputs (categoricals as their training level's index, which
    is what LightGBM saw), `probability_matrix` and `contributions_matrix` score them with a
    chosen thread count. Pandas on one-row frames costs ~10 ms; this path ~0.1 ms.
    """

    reason_directions = REASON_DIRECTIONS  # what `params={"reasons": k}` gives (batch checks)

    def load_context(self, context) -> None:
        artifacts = context.artifacts
        self.combination = (_read_json(artifacts["combination"]) if "combination" in artifacts
                            else {"kind": "lightgbm", "tree_weight": 1.0})
        self.kind = self.combination["kind"]
        self.tree_weight = float(self.combination["tree_weight"])
        self.booster = (lgb.Booster(model_file=artifacts["booster"])
                        if "booster" in artifacts else None)
        self.schema = _read_json(artifacts["schema"])
        self.calibrator = _read_json(artifacts["calibrator"])
        self.meta = _read_json(artifacts["meta"])
        self.features = list(self.schema["columns"])
        if self.booster is not None and self.features != self.booster.feature_name():
            raise ValueError("booster features and schema columns disagree")
        if (self.booster is None) != (self.kind == "logistic"):
            raise ValueError(f"a {self.kind} model has a booster exactly when it has trees")
        self.linear = (LinearPart(_read_json(artifacts["linear"]), self.schema)
                       if "linear" in artifacts else None)
        if (self.linear is None) != (self.kind == "lightgbm"):
            raise ValueError(f"a {self.kind} model has a linear part exactly when it is "
                             "logistic or a blend")
        self.level_codes = {
            col: {level: float(i) for i, level in enumerate(levels)}
            for col, levels in self.schema["categorical"].items()
        }

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows of `frame` as the booster's float64 matrix (model column order)."""
        typed = model_frame(frame, self.schema)
        out = np.empty((len(frame), len(self.features)), dtype="float64")
        for j, col in enumerate(self.features):
            values = typed[col]
            if isinstance(values.dtype, pd.CategoricalDtype):
                codes = values.cat.codes.to_numpy(dtype="float64")
                codes[codes < 0] = np.nan
                out[:, j] = codes
            else:
                out[:, j] = values.to_numpy(dtype="float64", na_value=np.nan)
        return out

    def matrix_from_records(self, records: list[dict]) -> np.ndarray:
        """JSON-like records (feature -> number, text or None) as the booster's matrix.
        Absent features, None, and unknown categorical levels are missing values."""
        columns = {col: [r.get(col) for r in records] for col in self.features}
        return self._encode(columns, len(records))

    def matrix_from_columns(self, columns: list[str], data: list[list]) -> np.ndarray:
        """Column-wise input (`columns` names, `data` rows of values in that order, like
        MLflow's `dataframe_split`) as the booster's matrix; the same rules as records."""
        by_name = dict(zip(columns, zip(*data, strict=True), strict=False)) if data else {}
        return self._encode(by_name, len(data))

    def _encode(self, values: dict[str, list | tuple], rows: int) -> np.ndarray:
        """Column by column: numpy converts a whole column at once (None becomes NaN); only a
        column holding text falls back to converting cell by cell."""
        out = np.full((rows, len(self.features)), np.nan, dtype="float64")
        for j, col in enumerate(self.features):
            column = values.get(col)
            if column is None:
                continue
            codes = self.level_codes.get(col)
            if codes is not None:
                out[:, j] = [np.nan if v is None else codes.get(str(v), np.nan) for v in column]
                continue
            try:
                out[:, j] = np.array(column, dtype="float64")
            except (TypeError, ValueError):
                out[:, j] = [_float_or_nan(v) for v in column]
        return out

    def log_odds_matrix(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """Raw (uncalibrated) log-odds of an encoded matrix: w * tree + (1 - w) * linear."""
        z = np.zeros(len(x))
        if self.booster is not None:
            z += self.tree_weight * np.asarray(
                self.booster.predict(x, raw_score=True, num_threads=threads), dtype="float64")
        if self.linear is not None:
            z += (1.0 - self.tree_weight) * self.linear.log_odds(x)
        return z

    def probability_matrix(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """Calibrated probabilities of an encoded matrix."""
        if len(x) == 0:
            return np.empty(0)
        if self.kind == "lightgbm":  # LightGBM's own transform, as models always did
            raw = np.asarray(self.booster.predict(x, num_threads=threads), dtype="float64")
        else:
            raw = _sigmoid(self.log_odds_matrix(x, threads))
        return calibrate(raw, self.calibrator)

    def contributions_matrix(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """Contributions (log-odds), one column per feature plus the bias last; each row sums
        to the raw log-odds: TreeSHAP for the trees, centred coefficient terms for the linear
        part (a numeric's includes its missing indicator), weighted like the scores."""
        if len(x) == 0:
            return np.empty((0, len(self.features) + 1))
        out = np.zeros((len(x), len(self.features) + 1))
        if self.booster is not None:
            out += self.tree_weight * np.asarray(
                self.booster.predict(x, pred_contrib=True, num_threads=threads))
        if self.linear is not None:
            out += (1.0 - self.tree_weight) * self.linear.contributions(x)
        return out

    def predict(
        self, context, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        """`model_input`: a DataFrame of features (extra columns ignored, absent ones missing).
        `params={"reasons": k}` adds column `reasons` (JSON, see `top_reasons`)."""
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        if not set(self.features) & set(model_input.columns):
            raise ValueError("the input has none of the model's feature columns")
        frame = model_frame(model_input, self.schema)[self.features]
        if frame.empty:
            return pd.DataFrame({PROBABILITY: np.empty(0)}, index=frame.index)
        k = int((params or {}).get(REASONS) or 0)
        if self.kind == "lightgbm":  # the booster reads the typed frame itself
            raw = np.asarray(self.booster.predict(frame), dtype="float64")
            contrib = np.asarray(self.booster.predict(frame, pred_contrib=True)) if k > 0 else None
        else:
            x = self.matrix(frame)
            raw = _sigmoid(self.log_odds_matrix(x))
            contrib = self.contributions_matrix(x) if k > 0 else None
        out = pd.DataFrame({PROBABILITY: calibrate(raw, self.calibrator)}, index=frame.index)
        if contrib is not None:
            out[REASONS] = top_reasons(contrib, self.features, k)
        return out


class LinearPart:
    """The `linear` artifact over the encoded matrix (model column order; categoricals as level
    codes, NaN for missing): arrays per column, so scoring is a few numpy operations."""

    def __init__(self, linear: dict, schema: dict) -> None:
        numeric, categorical = schema["numeric"], schema["categorical"]
        self.numeric = np.arange(len(numeric))
        params = [linear["numeric"][c] for c in numeric]
        self.median = np.array([p["median"] for p in params], dtype="float64")
        self.mean = np.array([p["mean"] for p in params], dtype="float64")
        self.scale = np.array([p["scale"] for p in params], dtype="float64")
        self.coef = np.array([p["coef"] for p in params], dtype="float64")
        missing = [p["missing"] or {"mean": 0.0, "scale": 1.0, "coef": 0.0} for p in params]
        self.m_mean = np.array([m["mean"] for m in missing], dtype="float64")
        self.m_scale = np.array([m["scale"] for m in missing], dtype="float64")
        self.m_coef = np.array([m["coef"] for m in missing], dtype="float64")
        self.clip = float(linear.get("clip", np.inf))
        self.tables = []  # (column index, level coefs + 0 for missing, centre)
        for j, (col, levels) in enumerate(categorical.items(), start=len(numeric)):
            p = linear["categorical"][col]
            table = np.array([p["levels"][lvl] for lvl in levels] + [0.0], dtype="float64")
            self.tables.append((j, table, float(p["centre"])))
        self.bias = float(linear["intercept"]) + sum(c for _, _, c in self.tables)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Per-row terms, one column per feature, then the bias; rows sum to the log-odds."""
        out = np.empty((len(x), x.shape[1] + 1))
        values = x[:, self.numeric]
        absent = np.isnan(values)
        c = self.clip
        out[:, self.numeric] = (
            self.coef * np.clip((np.where(absent, self.median, values) - self.mean) / self.scale,
                                -c, c)
            + self.m_coef * np.clip((absent - self.m_mean) / self.m_scale, -c, c)
        )
        for j, table, centre in self.tables:
            codes = x[:, j]
            index = np.where(np.isnan(codes), len(table) - 1, codes).astype(np.int64)
            out[:, j] = table[index] - centre
        out[:, -1] = self.bias
        return out

    def log_odds(self, x: np.ndarray) -> np.ndarray:
        return self.contributions(x).sum(axis=1)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function without overflow


def _float_or_nan(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return np.nan


def _read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


mlflow.models.set_model(PropensityModel())
