"""MLflow wiring: where runs go, how models are registered, and champion/challenger promotion.

The embedded default is a SQLite store and an artifact folder inside the data directory; a
``MLFLOW_TRACKING_URI`` (or ``mlflow_tracking_uri`` in the settings) points at a real server
instead, with no code change (``features.tracking_store`` holds that rule for training and
serving alike; training creates the embedded store's folder, serving never does). Aliases only
(no registry stages): ``champion`` is what serving loads, ``challenger`` a registered version
that did not beat it.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from features.tracking_store import embedded_uri, use_store
from training.tasks import CHALLENGER, CHAMPION

if TYPE_CHECKING:
    from training.uncertainty import Interval

log = logging.getLogger(__name__)
FINGERPRINT_TAG = "fingerprint"  # model-version tag: what the version was trained from


def configure(uri: str, mlflow_dir: Path) -> str:
    """Point MLflow at ``uri`` (``Settings.tracking_uri``; never the working directory),
    creating the folder of the embedded store; returns the URI."""
    if uri == embedded_uri(mlflow_dir):
        mlflow_dir.mkdir(parents=True, exist_ok=True)
    use_store(uri)
    return uri


def is_local_store(uri: str) -> bool:
    return uri.startswith("sqlite:")


def experiment_id(name: str, uri: str, mlflow_dir: Path) -> str:
    """The experiment ``name``, created with its artifacts in ``mlflow_dir`` when local."""
    import mlflow

    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if is_local_store(uri):
        location = (mlflow_dir.resolve() / "artifacts" / name).as_uri()
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
    new: dict[str, float],
    champion: dict[str, float] | None,
    max_ece_increase: float,
    *,
    versus_champion: Interval | None = None,
    versus_baselines: Mapping[str, Interval] | None = None,
    auc_margin: float = 0.01,
) -> Decision:
    """Champion or challenger for a new version, and why (the rule the README states).

    1. **Not below its own baselines.** A model whose paired ROC AUC difference to one of its
       own baselines (same run, same rows) has its whole interval below zero clearly loses to
       it: challenger, with or without a champion. A person may still promote it.
    2. No champion yet: champion.
    3. **Not worse than the champion.** With the paired difference new - champion on the new
       test window (``versus_champion``): challenger when its interval's lower bound is at or
       below ``-auc_margin`` (the new model may be worse than the champion by more than the
       margin), or when ECE is worse by more than ``max_ece_increase``. Otherwise champion: a
       model fitted on more recent data is preferred unless the evidence says it ranks worse.
       Without a paired interval (a champion that cannot score the new rows, compared by the
       metrics it logged on its own window) the point rule: a higher ROC AUC.
    """
    for baseline, diff in (versus_baselines or {}).items():
        if diff.hi < 0:
            return Decision(CHALLENGER, f"loses to its own {baseline} baseline: ROC AUC "
                                        f"{diff.text(signed=True)} (95 % interval below 0); "
                                        "`propensity models promote` overrules")
    if champion is None:
        return Decision(CHAMPION, "no champion yet")
    ece_loss = new["ece"] - champion["ece"]
    ece_text = (f"ECE {new['ece']:.4f} is worse than the champion's {champion['ece']:.4f} by "
                f"more than {max_ece_increase}")
    if versus_champion is not None:
        if not versus_champion.lo > -auc_margin:
            return Decision(CHALLENGER, f"ROC AUC vs the champion {versus_champion.text(True)} "
                                        f"on the same rows: may be worse by more than "
                                        f"{auc_margin}")
        if ece_loss > max_ece_increase:
            return Decision(CHALLENGER, ece_text)
        return Decision(CHAMPION, f"ROC AUC vs the champion {versus_champion.text(True)} (not "
                                  f"worse by more than {auc_margin}), ECE change "
                                  f"{ece_loss:+.4f}")
    auc_gain = new["roc_auc"] - champion["roc_auc"]
    if auc_gain <= 0:
        return Decision(CHALLENGER, f"ROC AUC {new['roc_auc']:.4f} does not beat the champion's "
                                    f"{champion['roc_auc']:.4f}")
    if ece_loss > max_ece_increase:
        return Decision(CHALLENGER, ece_text)
    return Decision(CHAMPION, f"ROC AUC +{auc_gain:.4f} over the champion, ECE change "
                              f"{ece_loss:+.4f}")


def version_with_fingerprint(name: str, fingerprint: str):
    """The registered version of ``name`` tagged with ``fingerprint`` (the oldest, should there
    be several), or None."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        versions = MlflowClient().search_model_versions(
            f"name = '{name}' and tags.{FINGERPRINT_TAG} = '{fingerprint}'")
    except MlflowException:
        return None
    found = [v for v in versions if (v.tags or {}).get(FINGERPRINT_TAG) == fingerprint]
    return min(found, key=lambda v: int(v.version)) if found else None


def aliases_of(name: str, version: str | int) -> list[str]:
    from mlflow import MlflowClient

    return sorted(MlflowClient().get_model_version(name, str(version)).aliases or [])


def tag_version(name: str, version: str | int, key: str, value: str) -> None:
    from mlflow import MlflowClient

    MlflowClient().set_model_version_tag(name, str(version), key, value)


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
