"""The one rule for where the MLflow store is (training writes it, serving reads it)."""

from __future__ import annotations

import os

import pytest

from features import tracking_store
from features.tracking_store import embedded_uri, tracking_uri, use_store


@pytest.fixture(autouse=True)
def nothing_set_here(monkeypatch):
    monkeypatch.setattr(tracking_store, "_SET_HERE", set())


def test_the_embedded_store_is_sqlite_in_the_mlflow_folder(tmp_path):
    expected = f"sqlite:///{tmp_path.resolve()}/mlflow/mlflow.db"
    assert embedded_uri(tmp_path / "mlflow") == expected
    assert tracking_uri(None, tmp_path / "mlflow") == expected


def test_the_setting_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert tracking_uri("sqlite:////srv/store.db", tmp_path) == "sqlite:////srv/store.db"
    assert tracking_uri(None, tmp_path) == "http://mlflow.internal:5000"


def test_a_uri_this_process_set_is_not_the_users_choice(tmp_path, monkeypatch):
    """MLflow exports what it is pointed at; a second data directory still gets its own store
    (serving used to take the first one's from the environment)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "restored after the test")
    first = embedded_uri(tmp_path / "a" / "mlflow")
    use_store(first)
    assert os.environ["MLFLOW_TRACKING_URI"] == first
    assert tracking_uri(None, tmp_path / "b" / "mlflow") == (
        f"sqlite:///{tmp_path.resolve()}/b/mlflow/mlflow.db")
    assert not (tmp_path / "a").exists()  # pointing MLflow at a store creates nothing
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")  # the user's
    assert tracking_uri(None, tmp_path / "b" / "mlflow") == "http://mlflow.internal:5000"
