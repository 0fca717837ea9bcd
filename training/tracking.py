"""MLflow wiring: where runs go, how models are registered, and champion/challenger promotion.

The embedded default is a SQLite store and an artifact folder inside the data directory; a
``MLFLOW_TRACKING_URI`` (or ``mlflow_tracking_uri`` in the settings) points at a real server
instead, with no code change. Aliases only (no registry stages): ``champion`` is what serving
loads, ``challenger`` a registered version that did not beat it.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from features.settings import Settings
from training.tasks import CHALLENGER, CHAMPION

log = logging.getLogger(__name__)


def configure(settings: Settings) -> str:
    """Point MLflow at the configured store (never at the working directory); returns the URI."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import mlflow

    uri = tracking_uri(settings)
    if uri == settings.default_tracking_uri:
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    _SET_HERE.add(uri)
    return uri


def tracking_uri(settings: Settings) -> str:
    """The store's URI (no MLflow import): the settings' URI, else MLFLOW_TRACKING_URI unless
    this process exported it, else the embedded SQLite store in the data directory."""
    external = os.environ.get("MLFLOW_TRACKING_URI")
    if external in _SET_HERE:  # mlflow.set_tracking_uri exports it: not the user's choice
        external = None
    return settings.mlflow_tracking_uri or external or settings.default_tracking_uri


#: URIs this process set itself (MLflow copies them into MLFLOW_TRACKING_URI).
_SET_HERE: set[str] = set()


def is_local_store(uri: str) -> bool:
    return uri.startswith("sqlite:")


def experiment_id(name: str, settings: Settings, uri: str) -> str:
    """The experiment ``name``, created with its artifacts in the data directory when local."""
    import mlflow

    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if is_local_store(uri):
        location = (settings.mlflow_dir.resolve() / "artifacts" / name).as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def git_commit(root: Path | None = None) -> str:
    """The code's commit (with '-dirty' when the tree has changes), or 'unknown'."""
    root = root or Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, check=True).stdout
        return sha + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@dataclass(frozen=True)
class Decision:
    """What promotion decided for a new version, and why."""

    alias: str
    reason: str


def decide(
    new: dict[str, float], champion: dict[str, float] | None, max_ece_increase: float
) -> Decision:
    """Champion only if it beats the current champion on the same test window: higher ROC AUC
    and calibration (ECE) no worse than ``max_ece_increase``."""
    if champion is None:
        return Decision(CHAMPION, "no champion yet")
    auc_gain = new["roc_auc"] - champion["roc_auc"]
    ece_loss = new["ece"] - champion["ece"]
    if auc_gain <= 0:
        return Decision(CHALLENGER, f"ROC AUC {new['roc_auc']:.4f} does not beat the champion's "
                                    f"{champion['roc_auc']:.4f}")
    if ece_loss > max_ece_increase:
        return Decision(CHALLENGER, f"ECE {new['ece']:.4f} is worse than the champion's "
                                    f"{champion['ece']:.4f} by more than {max_ece_increase}")
    return Decision(CHAMPION, f"ROC AUC +{auc_gain:.4f} over the champion, ECE change "
                              f"{ece_loss:+.4f}")


def champion_version(name: str):
    """The registered version holding the champion alias, or None."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def set_alias(name: str, version: str | int, alias: str) -> None:
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(name, alias, str(version))


def promote(name: str, version: str | int) -> None:
    """A person overrules the gate: ``version`` becomes champion, the old one challenger."""
    from mlflow import MlflowClient

    client = MlflowClient()
    client.get_model_version(name, str(version))  # raises a clear error if it does not exist
    previous = champion_version(name)
    client.set_registered_model_alias(name, CHAMPION, str(version))
    if previous is not None and str(previous.version) != str(version):
        client.set_registered_model_alias(name, CHALLENGER, str(previous.version))


def list_versions(names: list[str]) -> list[dict]:
    """Registered versions with their aliases and headline test metrics, newest first."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    rows = []
    for name in names:
        try:
            versions = client.search_model_versions(f"name = '{name}'")
        except MlflowException:
            continue
        for v in sorted(versions, key=lambda v: int(v.version), reverse=True):
            v = client.get_model_version(name, str(v.version))  # search omits the aliases
            metrics = client.get_run(v.run_id).data.metrics if v.run_id else {}
            rows.append({
                "name": name, "version": int(v.version), "aliases": sorted(v.aliases or []),
                "run_id": v.run_id, "roc_auc": metrics.get("test_roc_auc"),
                "ece": metrics.get("test_ece"), "created": v.creation_timestamp,
            })
    return rows
