"""The data scientists' notebooks run top to bottom on small generated data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from propensity_cli import app

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    """300 accounts over 16 months, a monthly snapshot grid and a churn champion."""
    data = tmp_path_factory.mktemp("book")
    runner = CliRunner()
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the store is the data directory's
    for args in (
        ["data", "generate", "--accounts", "300", "--months", "16", "--start", "2024-01-01",
         "--seed", "5"],
        ["features", "build", "--from", "2024-02-01", "--to", "2025-05-01"],
        ["train", "churn"],
    ):
        result = runner.invoke(app, [*args, "--data-dir", str(data)])
        assert result.exit_code == 0, (args, result.output)
    return data


def run_notebook(name: str, data: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROPENSITY_DATA_DIR": str(data), "NOTEBOOK_OUTPUT_DIR": str(out),
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, str(ROOT / "notebooks" / name)], env=env,
                          capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_exploration_notebook(book, tmp_path):
    done = run_notebook("01_exploration.py", book, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "churn within 90 days" in done.stdout
    for chart in ("kpis_by_segment", "retention_curves", "feature_distributions"):
        assert (tmp_path / f"{chart}.png").stat().st_size > 10_000


def test_model_report_notebook(book, tmp_path):
    done = run_notebook("02_model_report.py", book, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "propensity-churn champion" in done.stdout
    assert "cancellation_notice" in done.stdout or "mean |contribution|" in done.stdout
    for chart in ("churn_calibration", "churn_lift_gain", "churn_drivers"):
        assert (tmp_path / f"{chart}.png").stat().st_size > 10_000
