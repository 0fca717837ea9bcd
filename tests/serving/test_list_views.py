"""What the account managers' list needs from serving: ranks within a filtered list, other
orders (sortable columns), plain-language reasons in the API and the CSV, and a KPI strip per
owner and segment, checked on the shared trained book."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.kpi_strip import last_full_month, strip
from serving.phrasing import reason_text
from serving.results import CSV_COLUMNS
from serving.settings import ServingSettings
from serving.state import Generation


@pytest.fixture()
def client(generation, served_data):
    settings = ServingSettings(data_dir=served_data, auth_enabled=False)
    app = create_app(settings, loader=lambda _settings: generation, load_on_start=False)
    ok, error = app.state.holder.reload()
    assert ok, error
    with TestClient(app) as c:
        yield c


def busiest_owner(generation: Generation) -> str:
    return str(generation.scorer.table["owner"].value_counts().index[0])


def test_filtered_lists_give_the_rank_within_the_list_and_in_the_whole_list(client, generation):
    owner = busiest_owner(generation)
    whole = client.get("/v1/opportunities", params={"kind": "churn", "limit": 10_000,
                                                     "reasons": "false"}).json()["items"]
    overall = {i["account_id"]: i["rank"] for i in whole}
    assert [i["list_rank"] for i in whole] == [i["rank"] for i in whole]
    first = client.get("/v1/opportunities", params={"kind": "churn", "owner": owner,
                                                     "limit": 7, "reasons": "false"}).json()
    second = client.get("/v1/opportunities", params={
        "kind": "churn", "owner": owner, "limit": 7, "reasons": "false",
        "cursor": first["next_cursor"]}).json()
    items = first["items"] + second["items"]
    assert [i["list_rank"] for i in items] == list(range(1, 15))
    assert [i["rank"] for i in items] == [overall[i["account_id"]] for i in items]
    assert items[-1]["rank"] > 14  # other owners' accounts rank in between


def test_sorted_pages_order_the_filtered_list_by_a_column_nulls_last(generation):
    scorer = generation.scorer
    owner = busiest_owner(generation)
    table = scorer.table.assign(days=scorer.snapshot["days_to_renewal"].astype("float64"))
    listed = table[table["arr_at_risk"].notna() & (table["owner"] == owner)].sort_values(
        ["arr_at_risk", "account_id"], ascending=[False, True])
    listed = listed.assign(list_rank=range(1, len(listed) + 1))
    expected = listed.sort_values("days", na_position="last", kind="stable")
    assert expected["days"].isna().any() and expected["days"].notna().any()
    key = scorer.days_to_renewal()
    seen = []
    offset = 0
    while True:
        page = scorer.ranking.sorted_page("churn", owner, None, key, False, 10, offset)
        seen += [(scorer.ids[r], lr) for r, lr in zip(page.rows, page.list_ranks, strict=True)]
        assert page.total == len(listed)
        if page.next_cursor is None:
            break
        offset = int(page.next_cursor)
    assert seen == list(zip(expected["account_id"], expected["list_rank"], strict=True))
    rank_of = scorer.ranking.rank_of("churn")
    everyone = table[table["arr_at_risk"].notna()].sort_values(
        ["arr_at_risk", "account_id"], ascending=[False, True])["account_id"].tolist()
    assert [int(rank_of[scorer.row_of[a]]) for a, _ in seen] == [
        everyone.index(a) + 1 for a, _ in seen]


def test_api_reasons_and_csv_carry_the_plain_language_sentences(client):
    params = {"kind": "churn", "limit": 20}
    items = client.get("/v1/opportunities", params=params).json()["items"]
    rows = list(csv.DictReader(io.StringIO(client.get(
        "/v1/opportunities", params={**params, "format": "csv"}).text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    for item, row in zip(items, rows, strict=True):
        reasons = item["reasons"]["churn"]
        texts = []
        for direction, verb in (("raising", "raises"), ("lowering", "lowers")):
            for r in reasons[direction]:
                assert r["text"] == reason_text(r["feature"], r["description"], r["value"],
                                                "churn", direction)
                texts.append(f"{verb}: {r['text']}")
        assert row["reasons_text"] == "; ".join(texts)
        assert int(row["list_rank"]) == item["list_rank"]
    assert any("support tickets" in r["reasons_text"] or "contract" in r["reasons_text"]
               for r in rows)


def test_kpi_strip_of_the_whole_book_and_of_one_owner_match_the_kpi_report(generation,
                                                                           served_data):
    from features.kpis import compute_kpis
    from features.validation import load_tables

    settings = ServingSettings(data_dir=served_data)
    tables = load_tables(settings.raw_dir)
    month = last_full_month(generation.scorer.as_of)
    parts = generation.kpi_parts
    for by, value in ((None, None), ("owner", busiest_owner(generation)),
                      ("segment", "enterprise")):
        frame = compute_kpis(tables, by=("month", *([by] if by else [])), start=month,
                             end=month, gross_margin=settings.gross_margin)
        row = frame.iloc[0] if by is None else frame[frame[by] == value].iloc[0]
        got = strip(parts, **({by: value} if by else {}))
        assert got["month"] == f"{month:%Y-%m}"
        assert got["arr"] == pytest.approx(float(row["arr_end"]), rel=1e-12)
        for name in ("logo_churn_rate", "logo_churn_rate_ttm", "renewal_rate",
                     "net_revenue_retention"):
            want = None if pd.isna(row[name]) else float(row[name])
            assert got[name] == (None if want is None else pytest.approx(want, rel=1e-12)), (
                by, name)
    assert strip(parts) == generation.kpis
    whole = strip(parts)["arr_by_segment"]
    assert sum(whole.values()) == pytest.approx(strip(parts)["arr"])
    assert strip(parts, segment="enterprise")["arr_by_segment"] == {
        "enterprise": pytest.approx(whole["enterprise"])}
    assert np.isclose(sum(strip(parts, owner=o)["arr"] for o in generation.scorer.owners()),
                      strip(parts)["arr"])


def test_the_page_writes_money_in_the_configured_currency(generation, served_data):
    settings = ServingSettings(data_dir=served_data, auth_enabled=False, currency="EUR",
                               currency_locale="de_DE")
    app = create_app(settings, loader=lambda _settings: generation, load_on_start=False)
    ok, error = app.state.holder.reload()
    assert ok, error
    with TestClient(app) as client:
        html = client.get("/", params={"kind": "upsell"}).text
    table = generation.scorer.table
    total = table["expected_expansion"].sum()
    assert f'<strong id="list-sum">{total:,.0f} €</strong>'.replace(",", ".") in html.replace(
        "\xa0", " ")
    top = table.sort_values(["expected_expansion", "account_id"],
                            ascending=[False, True]).iloc[0]
    arr = f"{top['arr']:,.0f} €".replace(",", ".")
    assert f'<td class="num col-arr">{arr}</td>' in html.replace("\xa0", " ")
    assert "$" not in html
