"""The servable propensity model, logged with MLflow's "models from code".

MLflow copies this file into the logged model and runs it at load time, so it must stand alone:
it imports mlflow, lightgbm, numpy and pandas, never this project. Serving loads a model with
`mlflow.pyfunc.load_model("models:/propensity-churn@champion")` and needs nothing else.

Artifacts (written by `training.model_logging.log_propensity_model`):
- `booster`: LightGBM `model_to_string()` text;
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
        self.booster = lgb.Booster(model_file=artifacts["booster"])
        self.schema = _read_json(artifacts["schema"])
        self.calibrator = _read_json(artifacts["calibrator"])
        self.meta = _read_json(artifacts["meta"])
        self.features = self.booster.feature_name()
        if self.features != list(self.schema["columns"]):
            raise ValueError("booster features and schema columns disagree")
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

    def probability_matrix(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """Calibrated probabilities of an encoded matrix."""
        if len(x) == 0:
            return np.empty(0)
        raw = self.booster.predict(x, num_threads=threads)
        return calibrate(np.asarray(raw, dtype="float64"), self.calibrator)

    def contributions_matrix(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """TreeSHAP contributions (log-odds), one column per feature plus the bias last."""
        if len(x) == 0:
            return np.empty((0, len(self.features) + 1))
        return np.asarray(self.booster.predict(x, pred_contrib=True, num_threads=threads))

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
        raw = np.asarray(self.booster.predict(frame), dtype="float64")
        out = pd.DataFrame({PROBABILITY: calibrate(raw, self.calibrator)}, index=frame.index)
        k = int((params or {}).get(REASONS) or 0)
        if k > 0:
            contrib = np.asarray(self.booster.predict(frame, pred_contrib=True))
            out[REASONS] = top_reasons(contrib, self.features, k)
        return out


def _float_or_nan(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return np.nan


def _read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


mlflow.models.set_model(PropensityModel())
