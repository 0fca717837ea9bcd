"""The MLflow pyfunc of a bring-your-own-table model: a pickled ``TabularModel``.

Logged with this project's ``training`` package as ``code_paths``, so the model loads wherever
MLflow does, without the project installed. Output: the calibrated probability per row.
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd


class TabularPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        import joblib

        self.model = joblib.load(context.artifacts["model"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return pd.DataFrame({"probability": self.model.predict_proba(model_input)})
