"""Loading the served models through MLflow: the registry's champions, or explicit URIs.

Serving never imports `training`: a model is whatever `mlflow.pyfunc.load_model` returns for
`models:/propensity-<task>@champion`. The alias is resolved to a version first and that
version is loaded, so the version we report is the one we serve even if the alias moves.
The numpy fast path (`matrix`, `probability_matrix`, ...) comes from the unwrapped pyfunc.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from features.tracking_store import use_store

log = logging.getLogger(__name__)

#: The model tasks and their registry names (a contract test pins these to training's).
CROSS_SELL = "cross-sell"  # the task's one spelling in code (serving.ranking names its list)
TASKS = ("churn", "upsell", CROSS_SELL)
REQUIRED_TASKS = ("churn", "upsell")  # cross-sell is optional: no next-best-product without it
CHAMPION = "champion"
FAST_PATH = ("matrix", "matrix_from_records", "matrix_from_columns", "probability_matrix",
             "contributions_matrix")


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message names the task and the URI."""


class TrackingStoreError(RuntimeError):
    """The configured MLflow tracking store does not exist or cannot be read."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason  # the short form: "the tracking store at <uri> does not exist"


@dataclass(frozen=True)
class LoadedModel:
    """One served model and where it came from."""

    task: str
    uri: str
    version: str | None
    run_id: str | None
    model: Any = field(repr=False)  # the unwrapped propensity pyfunc (numpy fast path)

    @property
    def meta(self) -> dict:
        return dict(getattr(self.model, "meta", {}) or {})

    @property
    def features(self) -> list[str]:
        return list(self.model.features)


def registered_name(task: str) -> str:
    return f"propensity-{task}"


def model_uri(task: str, model_uris: Mapping[str, str]) -> str:
    """The explicit URI of `model_uris` (the setting), else the registry's champion."""
    return model_uris.get(task) or f"models:/{registered_name(task)}@{CHAMPION}"


def check_tracking_store(uri: str) -> None:
    """A SQLite tracking store must exist and be readable *before* MLflow opens it: MLflow
    would create an empty store in its place and then report every model as not found."""
    import sqlite3

    if not uri.startswith("sqlite:///"):
        return
    path = uri.removeprefix("sqlite:///")
    if not os.path.isfile(path):
        reason = f"the MLflow tracking store at {uri} does not exist"
        raise TrackingStoreError(
            f"{reason}: train a model there (`propensity train churn`) or point "
            "mlflow_tracking_uri / MLFLOW_TRACKING_URI at the store that holds the models",
            reason)
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
            con.execute("SELECT name FROM registered_models LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        reason = f"the MLflow tracking store at {uri} cannot be read ({exc})"
        raise TrackingStoreError(reason, reason) from exc


def load_model(task: str, uri: str, tracking_uri: str) -> LoadedModel:
    """Load one task's model from ``uri`` (resolving an alias in the store at
    ``tracking_uri``); `ModelLoadError` says which and why."""
    import mlflow
    from mlflow.exceptions import MlflowException

    use_store(tracking_uri)
    version = run_id = None
    try:
        if uri.startswith("models:/") and "@" in uri:
            name, alias = uri.removeprefix("models:/").split("@", 1)
            try:
                found = mlflow.MlflowClient().get_model_version_by_alias(name, alias)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                raise ModelLoadError(
                    f"{task}: no model {name} with alias {alias} in {tracking_uri}: "
                    f"train one with `propensity train {task}`") from exc
            version, run_id = str(found.version), found.run_id
            uri = f"models:/{name}/{version}"
        pyfunc = mlflow.pyfunc.load_model(uri)
        model = pyfunc.unwrap_python_model()
    except ModelLoadError:
        raise
    except Exception as exc:  # MLflow raises many types; all mean "cannot serve this"
        raise ModelLoadError(f"{task}: cannot load {uri}: {exc}") from exc
    missing = [m for m in FAST_PATH if not hasattr(model, m)]
    if missing:
        raise ModelLoadError(f"{task}: {uri} is not a propensity model of this version "
                             f"(lacks {', '.join(missing)}); retrain it with `propensity train`")
    return LoadedModel(task=task, uri=uri, version=version, run_id=run_id, model=model)


def load_models(tracking_uri: str, model_uris: Mapping[str, str]
                ) -> tuple[dict[str, LoadedModel], dict[str, str]]:
    """Every task's model that loads, and an error per task that did not. ``tracking_uri`` is
    ``Settings.tracking_uri``; ``model_uris`` the explicit URIs that replace champions."""
    loaded: dict[str, LoadedModel] = {}
    errors: dict[str, str] = {}
    uris = {task: model_uri(task, model_uris) for task in TASKS}
    if any(uri.startswith(("models:/", "runs:/")) for uri in uris.values()):
        check_tracking_store(tracking_uri)  # before MLflow could create one
    for task in TASKS:
        try:
            loaded[task] = load_model(task, uris[task], tracking_uri)
        except ModelLoadError as exc:
            errors[task] = str(exc)
            log.warning("model not loaded: %s", exc)
    return loaded, errors
