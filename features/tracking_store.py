"""Where the MLflow tracking store is: one rule for training (which writes it) and serving
(which reads it).

The ``mlflow_tracking_uri`` setting first, then ``MLFLOW_TRACKING_URI`` from the environment,
then the embedded SQLite store in ``<data_dir>/mlflow/``. MLflow exports every URI it is
pointed at into ``MLFLOW_TRACKING_URI``, so a URI this process set itself (``use_store``) is
not the user's choice and does not count: a second data directory in the same process (tests,
a reload) gets its own store, not the first one's. Creating the store's folder is training's
business; serving only checks the store exists (``serving.registry.check_tracking_store``).
"""

from __future__ import annotations

import os
from pathlib import Path

#: URIs this process pointed MLflow at (MLflow copies them into MLFLOW_TRACKING_URI).
_SET_HERE: set[str] = set()


def embedded_uri(mlflow_dir: Path) -> str:
    """The embedded store: SQLite in the data directory's mlflow folder."""
    return f"sqlite:///{mlflow_dir.resolve() / 'mlflow.db'}"


def tracking_uri(configured: str | None, mlflow_dir: Path) -> str:
    """The store's URI (no MLflow import): ``configured`` (the setting), else
    MLFLOW_TRACKING_URI unless this process exported it, else the embedded store."""
    external = os.environ.get("MLFLOW_TRACKING_URI")
    if external in _SET_HERE:
        external = None
    return configured or external or embedded_uri(mlflow_dir)


def use_store(uri: str) -> None:
    """Point MLflow's tracking and registry at ``uri`` (and remember it was set here)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    _SET_HERE.add(uri)
