"""Serving fixtures: one small trained book (300 accounts, 3 registered models) per test run.

Building it (generate, snapshots, train churn/upsell/cross-sell) takes about a minute, so it is
made once and shared by every xdist worker through a file lock (the pattern pytest-xdist
documents); tests copy nothing and must not write to it. `served_settings` points at it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from filelock import FileLock
from typer.testing import CliRunner

from serving.settings import ServingSettings
from serving.state import Generation, load_generation

ACCOUNTS, MONTHS, START, SEED = 300, 16, "2024-01-01", 5


def _build(data: Path, mlflow_template_db: Path) -> None:
    from propensity_cli import app

    runner = CliRunner()
    (data / "mlflow").mkdir(parents=True)
    shutil.copy(mlflow_template_db, data / "mlflow" / "mlflow.db")
    for args in (
        ["data", "generate", "--accounts", str(ACCOUNTS), "--months", str(MONTHS),
         "--start", START, "--seed", str(SEED)],
        ["features", "build", "--from", "2024-02-01", "--to", "2025-05-01"],
        ["train", "churn"], ["train", "upsell"], ["train", "cross-sell"],
    ):
        result = runner.invoke(app, [*args, "--data-dir", str(data)])
        assert result.exit_code == 0, (args, result.output)
    _serve_every_task(data)
    (data / ".complete").touch()


def _serve_every_task(data: Path) -> None:
    """On this small book the gate may keep a model that clearly loses to one of its own
    baselines as challenger (the cross-sell model does); the served book serves every task,
    as a person's `propensity models promote` would."""
    from features.tracking_store import embedded_uri
    from training.tasks import TASKS, registered_name
    from training.tracking import champion_version, configure, promote

    configure(embedded_uri(data / "mlflow"), data / "mlflow")
    for task in TASKS:
        if champion_version(registered_name(task)) is None:
            promote(registered_name(task), 1)


@pytest.fixture(scope="session")
def served_data(tmp_path_factory, mlflow_template_db) -> Path:
    """The data directory of a trained 300-account book (read-only for tests)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # this run's folder, shared by its xdist workers (never older runs)
    data = root / "served-book"
    with FileLock(str(root / "served-book.lock")):
        if not (data / ".complete").exists():
            shutil.rmtree(data, ignore_errors=True)
            _build(data, mlflow_template_db)
    return data


@pytest.fixture(scope="module")
def generation(served_data) -> Generation:
    """The real loader's generation of the shared book (champions via MLflow), loaded once per
    module (modules with a book of their own override it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        return load_generation(ServingSettings(data_dir=served_data, auth_enabled=False))


@pytest.fixture()
def served_settings(served_data, monkeypatch) -> ServingSettings:
    """Settings on the shared book with auth off (auth tests turn it on with their own keys)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return ServingSettings(data_dir=served_data, auth_enabled=False)


@pytest.fixture(autouse=True)
def audit_log_in_tmp(tmp_path, monkeypatch) -> Path:
    """Admin actions in tests log to the test's own folder, never into the shared book."""
    path = tmp_path / "audit.log"
    monkeypatch.setenv("PROPENSITY_AUDIT_LOG_PATH", str(path))
    return path
