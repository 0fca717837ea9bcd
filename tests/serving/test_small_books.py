"""The page and the lists on a book with no owners and a single segment."""

from __future__ import annotations

import pandas as pd
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.scorer import Scorer
from serving.settings import ServingSettings
from serving.state import Generation
from tests.serving.test_scorer import AS_OF, DESCRIPTIONS, book, loaded, snapshot, stub_models


def test_page_and_lists_with_no_owner_and_one_segment(tmp_path):
    accounts = book()
    accounts["owner"] = None
    accounts["segment"] = "direct"
    frame = snapshot()
    frame["segment"] = pd.Series(["direct"] * len(frame), dtype="string")
    scorer = Scorer(loaded(stub_models()), frame, accounts, AS_OF, DESCRIPTIONS,
                    reasons_per_direction=2)
    settings = ServingSettings(data_dir=tmp_path, auth_enabled=False)
    app = create_app(settings, loader=lambda _s: Generation(scorer=scorer, missing={}),
                     load_on_start=False)
    ok, error = app.state.holder.reload()
    assert ok, error
    with TestClient(app) as client:
        assert client.get("/v1/owners").json()["owners"] == ["unassigned"]
        assert client.get("/v1/owners").json()["segments"] == ["direct"]
        listed = client.get("/v1/opportunities", params={"owner": "unassigned",
                                                         "segment": "direct"}).json()
        assert len(listed["items"]) == 6
        for params in ({}, {"owner": "unassigned"}, {"segment": "direct", "kind": "upsell"}):
            page = client.get("/", params=params)
            assert page.status_code == 200, page.text
            assert page.text.count(">unassigned</td>") == 6
