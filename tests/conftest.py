"""Shared test fixtures (a throwaway MLflow store per test, cheap to make), the `slow` mark for
tests that use the expensive fixtures, and a summary of what was skipped and how to run it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

#: Fixtures that make any test using them slow: the trained 300-account book (real fits and
#: MLflow registrations, tests/serving/conftest.py) and an MLflow store (migrations of seconds).
SLOW_FIXTURES = frozenset({"served_data", "mlflow_template_db"})

#: What a skipped test of each mark needs, and how to get it.
HOW_TO_RUN = {
    "browser": "Debian's chromium and Playwright: `apt-get install chromium` (or point "
               "PROPENSITY_CHROMIUM at a chromium binary) and `make install`",
    "spark": "pyspark and Java 17: `make install-spark` and `apt-get install "
             "openjdk-17-jre-headless`",
    "postgres": "PostgreSQL's server binaries: `apt-get install postgresql` (initdb, pg_ctl)",
}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects, so `-m "not slow"` sees the mark
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `slow` every test that uses a slow fixture, wherever it lives."""
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter) -> None:
    """Say which groups of tests were skipped for a missing tool, and how to run them."""
    skipped: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        for mark in HOW_TO_RUN:
            if mark in getattr(report, "keywords", {}):
                skipped[mark] = skipped.get(mark, 0) + 1
    if not skipped:
        return
    terminalreporter.section("skipped for a missing tool")
    for mark, count in sorted(skipped.items()):
        terminalreporter.write_line(f"{count} {mark} test(s) skipped; they need {HOW_TO_RUN[mark]}")
    terminalreporter.write_line("CI sets PROPENSITY_REQUIRE_ALL_TESTS=1, which turns these skips "
                                "into failures.")


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


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server in a temp folder for the whole session (tests/postgres_server.py);
    skips without PostgreSQL's binaries, fails then in CI."""
    from tests.postgres_server import start_server

    server = start_server()
    yield server
    server.stop()
