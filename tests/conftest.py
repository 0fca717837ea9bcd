"""Shared test fixtures: a throwaway MLflow store per test, cheap to make."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


@pytest.fixture(scope="session")
def mlflow_template_db(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store, created once (its migrations take many seconds)."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow-template")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).search_experiments()  # forces the schema to be created
    return root / "mlflow.db"


@pytest.fixture(autouse=True)
def no_inherited_tracking_uri(monkeypatch):
    """Each test starts with no MLFLOW_TRACKING_URI: stores come from the data directory."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture()
def mlflow_data_dir(tmp_path, mlflow_template_db, monkeypatch) -> Path:
    """A data directory whose embedded MLflow store (data/mlflow/mlflow.db) starts empty."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "mlflow").mkdir()
    shutil.copy(mlflow_template_db, tmp_path / "mlflow" / "mlflow.db")
    return tmp_path
