"""What leaves the service is safe to open: the CSV export neutralises formula payloads in
account names and owners (and keeps negative numbers as numbers), the page escapes HTML.

A book whose accounts carry hostile names and owners is scored with the shared book's real
models and served through the real routes.
"""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.scorer import Scorer
from serving.settings import ServingSettings
from serving.state import Generation, load_generation

PAYLOADS = ['=HYPERLINK("http://evil","x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
            "\t=1", "\r=1"]
HTML = ['<script>alert("x")</script>', "O'Neil & \"Sons\" <b>"]


@pytest.fixture(scope="module")
def hostile(served_data) -> Generation:
    """The shared book's models and snapshot with names and owners set to the payloads."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        real = load_generation(ServingSettings(data_dir=served_data, auth_enabled=False)).scorer
    ids = list(real.ids)
    names = PAYLOADS + HTML
    book = pd.DataFrame({
        "account_id": ids,
        "name": [names[i % len(names)] for i in range(len(ids))],
        "owner": [names[(i + 1) % len(names)] for i in range(len(ids))],
        "products_held": [list(h) for h in real.held],
    })
    scorer = Scorer(real.models, real.snapshot, book, real.as_of, real.descriptions,
                    real.k)
    return Generation(scorer=scorer, missing={})


@pytest.fixture()
def client(hostile, served_data):
    app = create_app(ServingSettings(data_dir=served_data, auth_enabled=False),
                     loader=lambda _settings: hostile, load_on_start=False)
    ok, error = app.state.holder.reload()
    assert ok, error
    with TestClient(app) as c:
        yield c


def spreadsheet_would_run(cell: str) -> bool:
    return cell.startswith(("=", "+", "-", "@", "\t", "\r"))


@pytest.mark.parametrize("kind", ["churn", "upsell", "cross_sell"])
def test_csv_export_neutralises_formula_payloads_in_names_and_owners(client, kind):
    params = {"kind": kind, "limit": 10_000, "format": "csv"}
    response = client.get("/v1/opportunities", params=params)
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    items = client.get("/v1/opportunities", params={**params, "format": "json"}).json()["items"]
    assert len(rows) == len(items) > 0
    for row, item in zip(rows, items, strict=True):
        for column in ("name", "owner"):
            original = item[column]  # JSON carries the value as it is
            expected = "'" + original if original in PAYLOADS else original
            assert row[column] == expected, (column, original)
    cells = [cell for row in rows for cell in row.values()]
    assert not [c for c in cells if spreadsheet_would_run(c) and c not in _numbers(rows)]
    assert {r["name"] for r in rows} == {"'" + p for p in PAYLOADS} | set(HTML)


def _numbers(rows: list[dict]) -> set[str]:
    """Cells of the numeric columns (a negative number is data, not a formula)."""
    numeric = ("arr", "churn_probability", "arr_at_risk", "upsell_probability",
               "expected_expansion", "next_best_product_probability", "expected_cross_sell_arr",
               "rank")
    return {r[c] for r in rows for c in numeric}


def test_negative_numbers_stay_numbers_in_the_csv(client, hostile):
    """A numeric cell is never quoted: negative reason contributions and values stay numbers."""
    rows = list(csv.DictReader(io.StringIO(
        client.get("/v1/opportunities", params={"kind": "churn", "limit": 10_000,
                                                "format": "csv"}).text, newline="")))
    for row in rows:
        for column in ("arr", "churn_probability", "arr_at_risk"):
            if row[column]:
                float(row[column])  # parses: no quote was added
    assert any("(-" in r["reasons"] for r in rows), "the book should have lowering reasons"


def test_the_page_escapes_html_in_names_and_owners(client):
    page = client.get("/", params={"kind": "churn"}).text
    assert "<script>alert" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "O&#39;Neil &amp; &#34;Sons&#34; &lt;b&gt;" in page
