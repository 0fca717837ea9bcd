"""Log a fitted propensity model to MLflow as the standalone pyfunc in `pyfunc_model.py`.

The logged model holds the booster (when the model has trees), the linear part (when it has
one: `training.estimator.export_linear`), the combination (kind and tree weight), schema,
calibrator and meta as artifacts plus a copy of
`pyfunc_model.py` ("models from code"), so loading it needs mlflow, lightgbm, numpy and pandas
only, never this project. Its signature takes every feature as optional (absent columns are
missing values: the booster handles them) and of type Any, and a `reasons` parameter (default
0: no reasons). Any, because MLflow's type enforcement refuses int64 -> double and nulls in a
long column, so it would reject the feature store's own frames (nullable Int64) and JSON
payloads that write 0 for 0.0; the model coerces types itself (`pyfunc_model.model_frame`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from training.models import FeatureSchema

if TYPE_CHECKING:
    import lightgbm
    from mlflow.models.model import ModelInfo

    from training.estimator import Estimator

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
MODEL_NAME = "model"  # the LoggedModel's name inside the run
RUNTIME_PACKAGES = ("mlflow", "lightgbm", "numpy", "pandas")


def log_propensity_model(
    model: Estimator | lightgbm.Booster,
    schema: FeatureSchema,
    calibrator_dict: dict,
    meta: dict,
    input_example: pd.DataFrame,
    registered_model_name: str | None = None,
) -> ModelInfo:
    """Log (and optionally register) the model in the active run; the caller sets aliases.

    `info.model_uri` is the LoggedModel (`models:/m-<id>`); the registry version, when
    registered, is `info.registered_model_version`.
    """
    model = as_estimator(model, schema)
    if model.booster is not None and model.booster.feature_name() != schema.columns:
        raise ValueError("booster features and schema columns disagree")
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = _write_artifacts(Path(tmp), model, schema, calibrator_dict, meta)
        return log_artifacts_model(artifacts, schema, input_example, registered_model_name)


def log_artifacts_model(
    artifacts: dict[str, str],
    schema: FeatureSchema,
    input_example: pd.DataFrame,
    registered_model_name: str | None = None,
) -> ModelInfo:
    """Log the pyfunc over artifact files already written (name -> path, the names
    `pyfunc_model.py` reads), in the active run. A recalibration logs the files of the version
    it starts from with a new calibrator (`training.recalibrate`), so the trees stay the same
    bytes."""
    import mlflow

    example = example_frame(input_example, schema)
    # MLflow would otherwise copy the uv.lock of whatever directory we run in into the model
    with _env(MLFLOW_UV_AUTO_DETECT="false"):
        return mlflow.pyfunc.log_model(
            name=MODEL_NAME,
            python_model=str(MODEL_CODE),
            artifacts=artifacts,
            signature=signature(schema),
            input_example=example,
            registered_model_name=registered_model_name,
            pip_requirements=[f"{p}=={version(p)}" for p in RUNTIME_PACKAGES],
        )


def as_estimator(model: Estimator | lightgbm.Booster, schema: FeatureSchema) -> Estimator:
    """An estimator as is; a bare LightGBM booster as the lightgbm kind."""
    from training.estimator import Estimator

    if isinstance(model, Estimator):
        return model
    return Estimator("lightgbm", schema, model, None, None, 1.0)


@contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _write_artifacts(
    root: Path, model: Estimator | lightgbm.Booster, schema: FeatureSchema, calibrator: dict,
    meta: dict,
) -> dict[str, str]:
    model = as_estimator(model, schema)
    files = {
        "combination": (root / "combination.json", json.dumps(model.combination())),
        "schema": (root / "schema.json", json.dumps(schema.to_dict(), indent=1)),
        "calibrator": (root / "calibrator.json", json.dumps(calibrator)),
        "meta": (root / "meta.json", json.dumps(meta, indent=1, default=str)),
    }
    if model.booster is not None:
        files["booster"] = (root / "booster.txt", model.booster.model_to_string())
    if model.linear_export is not None:
        files["linear"] = (root / "linear.json", json.dumps(model.linear_export, indent=1))
    for path, text in files.values():
        path.write_text(text, encoding="utf-8")
    return {name: str(path) for name, (path, _) in files.items()}


def example_frame(df: pd.DataFrame, schema: FeatureSchema, rows: int = 5) -> pd.DataFrame:
    """The first rows of `df` in the signature's types: numerics float, categoricals text."""
    head = df.head(rows)
    out = {}
    for col in schema.numeric:
        values = head[col] if col in head.columns else pd.Series(np.nan, index=head.index)
        out[col] = (
            pd.to_numeric(values, errors="coerce")
            .astype("Float64")
            .to_numpy(dtype="float64", na_value=np.nan)
        )
    for col in schema.categorical:
        values = head[col] if col in head.columns else pd.Series(None, index=head.index)
        out[col] = (
            values.astype(object)
            .where(values.notna(), None)
            .map(lambda v: None if v is None else str(v))
        )
    return pd.DataFrame(out, index=head.index).reset_index(drop=True)


def signature(schema: FeatureSchema):
    """Inputs: every feature optional; outputs: probability, and reasons when asked."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
    from mlflow.types.schema import AnyType

    inputs = [ColSpec(AnyType(), c, required=False) for c in schema.columns]
    outputs = [ColSpec("double", "probability"), ColSpec("string", "reasons", required=False)]
    params = ParamSchema([ParamSpec("reasons", "long", 0)])
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs), params=params)
