"""A book as a customer brings it: only the three required tables, sales channels for
segments, no owners, some regions unknown, semiannual terms, and event types the defaults never
heard of. It validates (with warnings), builds, trains and serves through the commands."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from features.build import feature_groups
from features.event_types import stored_spec
from features.profile import profile_snapshot
from features.store import FeatureStore
from serving.settings import ServingSettings

pytestmark = pytest.mark.slow

SEGMENTS = {"SMB": "self-serve", "mid-market": "partner channel", "enterprise": "direct sales"}
EVENTS = {"login": "Session Start", "view_report": "dashboard.open", "create_report": "query",
          "export": "csv download", "api_call": "API request", "integration_sync": "sync",
          "admin_action": "settings change"}


def run(*args: str):
    from propensity_cli import app

    return CliRunner().invoke(app, list(args))


def customer_book(data: Path) -> None:
    """A generated book turned into the customer's shape."""
    raw = data / "raw"
    for table in ("support_tickets", "nps_responses", "contacts", "activities"):
        (raw / f"{table}.parquet").unlink()
    shutil.rmtree(data / "truth", ignore_errors=True)  # real data have no oracle
    accounts = pd.read_parquet(raw / "accounts.parquet")
    accounts["segment"] = accounts["segment"].map(SEGMENTS)
    accounts["owner"] = None
    accounts.loc[accounts.index % 3 == 0, "region"] = None
    accounts.to_parquet(raw / "accounts.parquet", index=False)
    subs = pd.read_parquet(raw / "subscriptions.parquet")
    annual = subs.index[subs["billing_period"] == "annual"]
    subs.loc[annual[::2], "billing_period"] = "semiannual"
    subs.to_parquet(raw / "subscriptions.parquet", index=False)
    events = pd.read_parquet(raw / "usage_events.parquet")
    events["event_type"] = events["event_type"].map(EVENTS)
    events.to_parquet(raw / "usage_events.parquet", index=False)


def test_a_required_tables_only_book_validates_builds_trains_and_serves(
        mlflow_data_dir, monkeypatch):
    data = mlflow_data_dir
    d = ["--data-dir", str(data)]
    generated = run("data", "generate", "--accounts", "300", "--months", "16", "--start",
                    "2024-01-01", "--seed", "5", *d)
    assert generated.exit_code == 0, generated.output
    customer_book(data)

    validated = run("data", "validate", *d)
    assert validated.exit_code == 0, validated.output
    assert "warning: accounts.owner: null values" in validated.output
    assert "warning: accounts.region: null values" in validated.output
    assert "warning: support_tickets: optional table absent" in validated.output
    assert "billing_period" not in validated.output  # semiannual is documented

    built = run("features", "build", "--from", "2024-02-01", "--to", "2025-05-01", *d)
    assert built.exit_code == 0, built.output
    assert "tables absent: activities, contacts, nps_responses, support_tickets" in built.output

    settings = ServingSettings(data_dir=data, auth_enabled=False)
    store = FeatureStore(settings.features_dir)
    last = store.dates()[-1]
    spec = stored_spec(settings, store, last)
    assert spec.event_types == tuple(sorted(EVENTS.values()))
    snapshot = store.read(last)
    assert "events_session_start_30d" in snapshot.columns
    usage = [p for p in profile_snapshot(snapshot, feature_groups(spec), frozenset())
             if p.family == "usage"]
    assert usage and [p.feature for p in usage if p.status] == []

    for task in ("churn", "upsell", "cross-sell"):
        trained = run("train", task, *d)
        assert trained.exit_code == 0, (task, trained.output)
        assert "constant or all-null in the training window: " in trained.output

    from serving.app import create_app
    from serving.registry import load_models
    from tests.serving.conftest import _serve_every_task

    _serve_every_task(settings.data_dir)  # a model the gate kept back is promoted by a person
    models, _ = load_models(settings.tracking_uri, settings.model_uris)
    meta = models["churn"].meta
    assert meta["event_types"] == list(spec.event_types)
    assert "tickets_90d" in meta["dropped_features"]  # all null: no support_tickets table
    assert "tickets_90d" not in models["churn"].model.schema["numeric"]
    upsell_value = models["upsell"].meta["value"]
    assert upsell_value["by"] == "segment" and upsell_value["min_positives"] == 20
    assert set(upsell_value["groups"]) | set(upsell_value["pooled"]) <= set(SEGMENTS.values())

    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200:  # models load in the background
            assert time.monotonic() < deadline, client.get("/v1/models").text
            time.sleep(0.2)
        owners = client.get("/v1/owners").json()
        assert owners["owners"] == ["unassigned"]
        assert owners["segments"] == sorted(SEGMENTS.values())
        page = client.get("/v1/opportunities", params={"kind": "churn", "owner": "unassigned",
                                                       "limit": 5})
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        assert len(items) == 5 and all(i["owner"] is None for i in items)
        one = client.get(f"/v1/accounts/{items[0]['account_id']}")
        assert one.status_code == 200 and one.json()["churn_probability"] is not None
        html = client.get("/", params={"owner": "unassigned", "segment": "partner channel"})
        assert html.status_code == 200 and "unassigned" in html.text
