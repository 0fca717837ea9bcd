"""The scoring API end to end on a small trained book: every route's happy path, rankings and
pagination, CSV, metrics, the 4xx contract (422 with the field path, 413, 404) and API keys on
the real routes.

One generation (3 champions + the newest snapshot of the shared 300-account book) is loaded
once for the module; each test builds its own app over it, so apps are cheap and isolated.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from features.catalogue import CANDIDATE_PRODUCT as CANDIDATE
from serving.app import create_app
from serving.keys import KeyStore
from serving.ranking import KINDS
from serving.results import CSV_COLUMNS
from serving.settings import ServingSettings
from serving.state import Generation, LoadError
from serving.valuation import RISK_TIERS

VALUE_OF = {kind: value for kind, (_, value) in KINDS.items()}
INPUT_KEYS = ("missing_features", "missing_importance", "missing_important")
ALL_KINDS = tuple(KINDS)


def serve(generation: Generation, settings: ServingSettings):
    """A started app (lifespan run) serving `generation`; use as a context manager."""
    app = create_app(settings, loader=lambda _settings: generation, load_on_start=False)
    ok, error = app.state.holder.reload()
    assert ok, error
    return TestClient(app)


@pytest.fixture()
def client(generation, served_data):
    with serve(generation, ServingSettings(data_dir=served_data, auth_enabled=False)) as c:
        yield c


def ids_of(items: list[dict]) -> list[str]:
    return [i["account_id"] for i in items]


def snapshot_record(generation: Generation, row: int) -> dict:
    """An account's snapshot row as a CRM would send it: every model feature, JSON values."""
    scorer = generation.scorer
    record: dict = {}
    for feature in scorer.known_features:
        value = scorer.snapshot[feature].iat[row]
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        record[feature] = value
    record["account_id"] = str(scorer.ids[row])
    record["held_products"] = list(scorer.held[row])
    return record


# --- health and readiness ---------------------------------------------------------------------
def test_healthz_answers_and_readyz_is_503_until_the_first_load(generation, served_data):
    app = create_app(ServingSettings(data_dir=served_data, auth_enabled=False),
                     loader=lambda _settings: generation, load_on_start=False)
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        before = client.get("/readyz")
        assert (before.status_code, before.json()) == (503, {"status": "loading"})
        not_ready = client.post("/v1/score", json={"account_ids": ["A"]})
        assert not_ready.status_code == 503
        assert not_ready.json()["detail"]["error"] == "not_ready"
        assert client.get("/v1/models").json()["ready"] is False

        assert app.state.holder.reload() == (True, None)
        after = client.get("/readyz")
        assert (after.status_code, after.json()) == (200, {"status": "ready"})


def test_readyz_reports_a_failed_first_load(served_data):
    def broken(_settings):
        raise LoadError("no feature snapshot in /nowhere")

    app = create_app(ServingSettings(data_dir=served_data, auth_enabled=False), loader=broken,
                     load_on_start=False)
    with TestClient(app) as client:
        app.state.holder.reload()
        ready = client.get("/readyz")
        assert (ready.status_code, ready.json()) == (503, {
            "status": "failed", "reason": "LoadError: no feature snapshot in /nowhere"})
        models = client.get("/v1/models").json()
        assert models["ready"] is False
        assert models["last_reload_error"] == "LoadError: no feature snapshot in /nowhere"


@pytest.mark.slow
def test_the_real_loader_becomes_ready_in_the_background(served_settings):
    """The default loader at start-up: /healthz at once, /readyz 200 once models are in."""
    app = create_app(served_settings)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        deadline = time.monotonic() + 180
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "not ready after 180 s"
            time.sleep(0.2)
        models = client.get("/v1/models").json()
        assert sorted(m["task"] for m in models["models"]) == ["churn", "cross-sell", "upsell"]
        assert models["missing"] == {} and models["last_reload_error"] is None


# --- scoring ----------------------------------------------------------------------------------
def test_score_by_ids_keeps_order_and_makes_unknown_ids_item_errors(client, generation):
    scorer = generation.scorer
    known = [str(a) for a in scorer.ids[[5, 0, 17]]]
    response = client.post("/v1/score", json={"account_ids": [known[0], "NOPE", *known[1:]]})
    assert response.status_code == 200
    body = response.json()
    assert body["as_of"] == scorer.as_of.isoformat()
    assert body["model_versions"] == {"churn": "1", "upsell": "1", "cross-sell": "1"}
    results = body["results"]
    assert ids_of(results) == [known[0], "NOPE", *known[1:]]
    assert results[1] == {"account_id": "NOPE",
                          "error": "unknown account: not in the served snapshot"}
    for result in (results[0], results[2], results[3]):
        assert result["error"] is None
        assert set(result["reasons"]) == {"churn", "upsell", "cross-sell"}
        for reason_set in result["reasons"].values():
            assert len(reason_set["raising"]) <= 3 and len(reason_set["lowering"]) <= 3
            assert all(r["contribution"] > 0 for r in reason_set["raising"])
            assert all(r["contribution"] < 0 for r in reason_set["lowering"])


def test_scores_by_id_are_the_models_own_predictions(client, generation):
    """By-id scores (the scorer's numpy pass) equal each pyfunc's DataFrame `predict`, and
    the next best product is the likeliest product the account does not hold."""
    scorer = generation.scorer
    rows = list(range(0, len(scorer.ids), 25))
    frame = scorer.snapshot.iloc[rows]
    body = client.post("/v1/score", json={"account_ids": [str(scorer.ids[r]) for r in rows],
                                          "reasons": False}).json()
    churn = scorer.models["churn"].model.predict(None, frame)["probability"].to_numpy()
    upsell = scorer.models["upsell"].model.predict(None, frame)["probability"].to_numpy()
    cross = scorer.models["cross-sell"].model
    by_product = {p: cross.predict(None, frame.assign(**{CANDIDATE: p}))["probability"]
                  .to_numpy() for p in scorer.products}
    for i, (row, result) in enumerate(zip(rows, body["results"], strict=True)):
        assert "reasons" not in result
        assert result["churn_probability"] == pytest.approx(churn[i], abs=1e-6)
        assert result["upsell_probability"] == pytest.approx(upsell[i], abs=1e-6)
        offers = {p: v[i] for p, v in by_product.items() if p not in scorer.held[row]}
        if offers:
            best = max(offers, key=offers.get)
            assert result["next_best_product"] == best
            assert result["next_best_product_probability"] == pytest.approx(offers[best],
                                                                              abs=1e-6)
        else:
            assert result["next_best_product"] is None
        arr, p = result["arr"], result["churn_probability"]
        assert result["arr_at_risk"] == pytest.approx(arr * p, abs=0.01 + arr * 1e-6)
        assert result["risk_tier"] == next(tier for tier, floor in RISK_TIERS if p >= floor)


@pytest.mark.parametrize("size", [4, 80])  # 80 > SINGLE_ROW_LIMIT: the thread-pool path
def test_scoring_a_snapshot_row_by_features_equals_scoring_it_by_id(client, generation, size):
    scorer = generation.scorer
    rows = list(range(size))
    everything_held = [i for i, p in enumerate(scorer.cols["next_best_product"]) if p is None]
    assert everything_held, "the fixture book should have an account holding every product"
    rows += everything_held[:1]  # no next best product for it
    records = [snapshot_record(generation, r) for r in rows]
    by_id = client.post("/v1/score", json={"account_ids": [r["account_id"] for r in records]})
    by_features = client.post("/v1/score", json={"features": records})
    assert by_id.status_code == by_features.status_code == 200
    for a, b, record in zip(by_id.json()["results"], by_features.json()["results"], records,
                            strict=True):
        assert a["churn_probability"] is not None
        # the CRM sends no name or owner; everything else, reasons included, is identical
        assert {**a, "name": None, "owner": None} == {
            k: v for k, v in b.items() if k not in INPUT_KEYS}
        # and the explicit answer says how many of the models' features were missing
        assert b["missing_features"] == sum(record[f] is None for f in scorer.known_features)


def test_score_by_features_runs_only_the_tasks_asked_for(client, generation):
    record = snapshot_record(generation, 3)
    body = client.post("/v1/score", json={"features": [record], "tasks": ["churn"],
                                          "reasons": False}).json()
    [result] = body["results"]
    assert result["churn_probability"] is not None
    assert result["upsell_probability"] is None
    assert result["next_best_product"] is None
    assert "reasons" not in result


def test_score_by_features_treats_absent_features_as_missing(client, generation):
    record = snapshot_record(generation, 3)
    del record["account_id"]
    dropped = [f for f in generation.scorer.known_features if record[f] is not None][:3]
    absent = {k: v for k, v in record.items() if k not in dropped}
    body = client.post("/v1/score", json={"features": [absent, {**record, **dict.fromkeys(
        dropped)}]})
    assert body.status_code == 200
    gone, null = body.json()["results"]
    assert gone == null
    assert 0.0 < gone["churn_probability"] < 1.0
    assert gone["arr"] == record["arr"] and gone["segment"] == record["segment"]
    assert gone["account_id"] is None


def test_account_route_equals_the_batch_item_and_404s_unknown_ids(client, generation):
    account = str(generation.scorer.ids[42])
    single = client.get(f"/v1/accounts/{account}")
    assert single.status_code == 200
    [batch] = client.post("/v1/score", json={"account_ids": [account]}).json()["results"]
    assert single.json() == batch
    bare = client.get(f"/v1/accounts/{account}", params={"reasons": "false"}).json()
    assert "reasons" not in bare and bare["churn_probability"] == batch["churn_probability"]

    missing = client.get("/v1/accounts/NOPE-1")
    assert missing.status_code == 404
    assert missing.json()["detail"] == {
        "error": "unknown_account",
        "message": f"account 'NOPE-1' is not in the snapshot of {generation.scorer.as_of}"}


# --- ranked lists -----------------------------------------------------------------------------
def full_list(client, kind: str, **params) -> dict:
    response = client.get("/v1/opportunities", params={"kind": kind, "limit": 10_000,
                                                        "reasons": "false", **params})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_lists_rank_by_value_descending_then_account_id(client, generation, kind):
    body = full_list(client, kind)
    value = VALUE_OF[kind]
    items = body["items"]
    keys = [(-i[value], i["account_id"]) for i in items]
    assert keys == sorted(keys)
    assert [i["rank"] for i in items] == list(range(1, len(items) + 1))
    assert body["next_cursor"] is None and body["total"] == len(items)
    # exactly the accounts that have the list's value, checked against the by-id scores
    everyone = client.post("/v1/score", json={"account_ids": list(generation.scorer.ids),
                                              "reasons": False}).json()["results"]
    valued = {r["account_id"]: r[value] for r in everyone if r[value] is not None}
    assert {i["account_id"]: i[value] for i in items} == valued


def test_cross_sell_ties_are_broken_by_account_id(client):
    """Many accounts share an expected cross-sell ARR: their order must be by account_id."""
    items = full_list(client, "cross_sell")["items"]
    counts = Counter(i["expected_cross_sell_arr"] for i in items)
    tied = [v for v, n in counts.items() if n > 1]
    assert tied, "the fixture book should have ties"
    for v in tied:
        group = [i["account_id"] for i in items if i["expected_cross_sell_arr"] == v]
        assert group == sorted(group)


@pytest.mark.parametrize(("kind", "limit", "filters"), [
    ("churn", 7, {}), ("upsell", 50, {}), ("cross_sell", 13, {}), ("churn", 1, {}),
    ("upsell", 9, {"segment": "SMB"}),
])
def test_walking_pages_gives_every_account_once_in_the_big_page_order(client, kind, limit,
                                                                       filters):
    if limit == 1:
        filters = {"owner": client.get("/v1/opportunities").json()["items"][0]["owner"]}
    whole = full_list(client, kind, **filters)
    seen: list[dict] = []
    cursor = None
    pages = 0
    while True:
        params = {"kind": kind, "limit": limit, "reasons": "false", **filters}
        body = client.get("/v1/opportunities",
                          params={**params, **({"cursor": cursor} if cursor else {})}).json()
        assert len(body["items"]) <= limit and body["total"] == whole["total"]
        seen += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert ids_of(seen) == ids_of(whole["items"])
    assert len(set(ids_of(seen))) == len(seen) == whole["total"]
    assert [i["rank"] for i in seen] == [i["rank"] for i in whole["items"]]
    assert pages == max(1, math.ceil(whole["total"] / limit))


def test_bad_cursors_are_400(client):
    churn_cursor = client.get("/v1/opportunities", params={"limit": 2}).json()["next_cursor"]
    wrong_list = client.get("/v1/opportunities", params={"kind": "upsell",
                                                         "cursor": churn_cursor})
    assert wrong_list.status_code == 400
    assert wrong_list.json()["detail"] == {
        "error": "bad_cursor",
        "message": "cursor: this cursor belongs to the 'churn' list, not 'upsell'"}
    garbage = client.get("/v1/opportunities", params={"cursor": "not-a-cursor"})
    assert garbage.status_code == 400
    assert garbage.json()["detail"]["message"] == "cursor: not a cursor issued by this list"


def test_owner_and_segment_filters(client, generation):
    everyone = full_list(client, "churn")["items"]
    owner, own_segment = everyone[0]["owner"], everyone[0]["segment"]
    other_owner = next(o for o in generation.scorer.owners() if o != owner)
    for filters in ({"owner": owner}, {"owner": other_owner}, {"segment": "enterprise"},
                    {"owner": owner, "segment": own_segment}):
        body = full_list(client, "churn", **filters)
        expected = [i for i in everyone if all(i[k] == v for k, v in filters.items())]
        assert 0 < len(expected) < len(everyone), filters
        assert ids_of(body["items"]) == ids_of(expected)
        assert body["total"] == len(expected)
        # ranks stay positions in the whole list, so a filtered list still says "#12 overall"
        assert [i["rank"] for i in body["items"]] == [i["rank"] for i in expected]
    # the filters combine with AND (each owner of the fixture book has one segment)
    other_segment = next(s for s in generation.scorer.segments() if s != own_segment)
    for filters in ({"owner": owner, "segment": other_segment},):
        nobody = full_list(client, "churn", **filters)
        assert (nobody["total"], nobody["items"], nobody["next_cursor"]) == (0, [], None)


def test_list_items_carry_the_list_models_reasons(client):
    body = client.get("/v1/opportunities", params={"kind": "upsell", "limit": 3}).json()
    assert [set(i["reasons"]) for i in body["items"]] == [{"upsell"}] * 3


@pytest.mark.parametrize("how", ["accept", "format"])
def test_csv_export_has_the_json_lists_accounts_in_order(client, generation, how):
    params = {"kind": "upsell", "segment": "mid-market", "limit": 10_000}
    as_json = client.get("/v1/opportunities", params=params).json()
    if how == "accept":
        response = client.get("/v1/opportunities", params=params,
                              headers={"Accept": "text/csv"})
    else:
        response = client.get("/v1/opportunities", params={**params, "format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="opportunities-upsell-{generation.scorer.as_of}.csv"')
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert tuple(csv.DictReader(io.StringIO(response.text)).fieldnames) == CSV_COLUMNS
    assert [r["account_id"] for r in rows] == ids_of(as_json["items"])
    for row, item in zip(rows, as_json["items"], strict=True):
        assert int(row["rank"]) == item["rank"]
        assert float(row["expected_expansion"]) == item["expected_expansion"]
        assert float(row["upsell_probability"]) == item["upsell_probability"]
        assert row["segment"] == "mid-market" and row["play"] == item["play"]
        first = item["reasons"]["upsell"]["raising"][0]
        assert row["reasons"].startswith(f"{first['feature']} ({first['contribution']:+.2f})")


def test_format_json_wins_over_an_accept_header(client):
    response = client.get("/v1/opportunities", params={"format": "json", "limit": 2},
                          headers={"Accept": "text/csv"})
    assert response.headers["content-type"] == "application/json"
    assert len(response.json()["items"]) == 2


# --- models and metrics -----------------------------------------------------------------------
def test_models_lists_what_is_served(client, generation):
    body = client.get("/v1/models").json()
    assert body["ready"] is True
    assert body["as_of"] == generation.scorer.as_of.isoformat() == "2025-05-01"
    assert body["accounts"] == len(generation.scorer.ids)
    assert body["missing"] == {} and body["last_reload_error"] is None
    by_task = {m["task"]: m for m in body["models"]}
    assert set(by_task) == {"churn", "upsell", "cross-sell"}
    for task, model in by_task.items():
        assert model["uri"] == f"models:/propensity-{task}/1"
        assert model["version"] == "1" and model["run_id"]
        assert model["features"] == generation.scorer.models[task].features
        assert "arr" in model["features"]
    assert CANDIDATE in by_task["cross-sell"]["features"]


def test_metrics_count_requests_by_route_and_describe_the_models(client, generation):
    account = str(generation.scorer.ids[0])
    for _ in range(3):
        client.post("/v1/score", json={"account_ids": [account, "NOPE"], "reasons": False})
    client.get(f"/v1/accounts/{account}")
    client.get("/v1/accounts/NOPE")
    client.post("/v1/score", json={})
    text = client.get("/metrics").text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}

    def requests(method: str, route: str, status: str) -> float:
        key = (("method", method), ("route", route), ("status", status))
        return samples.get(("propensity_requests_total", key), 0.0)

    assert requests("POST", "/v1/score", "200") == 3
    assert requests("POST", "/v1/score", "422") == 1
    assert requests("GET", "/v1/accounts/{account_id}", "200") == 1
    assert requests("GET", "/v1/accounts/{account_id}", "404") == 1
    assert samples[("propensity_scored_accounts_total", (("source", "ids"),))] == 6
    for task in ("churn", "upsell", "cross-sell"):
        key = (("task", task), ("uri", f"models:/propensity-{task}/1"), ("version", "1"))
        assert samples[("propensity_model_info", key)] == 1
    assert samples[("propensity_accounts", ())] == len(generation.scorer.ids)
    infinite = (("le", "+Inf"), ("score", "churn_probability"))
    assert samples[("propensity_score_accounts", infinite)] == len(generation.scorer.ids)


# --- the 4xx contract -------------------------------------------------------------------------
def detail(response) -> list[dict]:
    assert response.status_code == 422, response.text
    return response.json()["detail"]


@pytest.mark.parametrize(("body", "loc", "rule"), [
    ({"account_ids": "A0001"}, ["body", "account_ids"], "list_type"),
    ({"account_ids": [1]}, ["body", "account_ids", 0], "string_type"),
    ({"account_ids": [""]}, ["body", "account_ids", 0], "string_too_short"),
    ({"account_ids": ["A"], "account": 1}, ["body", "account"], "extra_forbidden"),
    ({"account_ids": ["A"], "tasks": ["churn", "retention"]}, ["body", "tasks", 1],
     "literal_error"),
    ({"account_ids": ["A"], "tasks": []}, ["body", "tasks"], "too_short"),
    ({"account_ids": ["A"], "reasons": "maybe"}, ["body", "reasons"], "bool_parsing"),
    ({"features": {"arr": 1}}, ["body", "features"], "list_type"),
    ({"features": [{"arr": {"value": 1}}]}, ["body", "features", 0, "arr"], None),
    ({"features": [{"arr": 1.0}, {"held_products": 5}]}, ["body", "features", 1, "held_products"],
     "list_type"),
    ({"features": [{"held_products": "core"}]}, ["body", "features", 0, "held_products"],
     "list_type"),
    ({"features": [{"account_id": ["A1"]}]}, ["body", "features", 0, "account_id"],
     "string_type"),
])
def test_invalid_bodies_are_422_with_the_field_path_and_rule(client, body, loc, rule):
    errors = detail(client.post("/v1/score", json=body))
    if rule is None:  # a union: one error per member type, all at this path
        assert errors and all(e["loc"][:len(loc)] == loc for e in errors)
    else:
        assert [(e["loc"], e["type"]) for e in errors] == [(loc, rule)]


@pytest.mark.parametrize("body", [{}, {"account_ids": ["A"], "features": [{"arr": 1.0}]},
                                  {"account_ids": None, "features": None}])
def test_exactly_one_of_account_ids_or_features(client, body):
    [error] = detail(client.post("/v1/score", json=body))
    assert error["loc"] == ["body"]
    assert error["msg"] == ("Value error, give exactly one of account_ids, features, or columns "
                            "with data")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinity_are_refused(client, literal):
    raw = '{"features": [{"arr": LITERAL}]}'.replace("LITERAL", literal)
    [error] = detail(client.post("/v1/score", content=raw,
                                 headers={"Content-Type": "application/json"}))
    assert error["type"] == "json_invalid"
    assert error["ctx"]["error"] == (
        "number is infinity when parsed as double" if literal == "1e999"
        else "NaN and Infinity are not allowed: send null for a missing value")
    where = raw.index(literal)  # the path of a JSON syntax error is its character position
    assert error["loc"][0] == "body" and where <= error["loc"][1] <= where + 1


def test_unknown_feature_names_are_422_naming_each(client):
    response = client.post("/v1/score", json={"features": [
        {"arr": 1.0, "seatz": 3}, {"arr": 2.0}, {"nps_lats": 7}]})
    assert response.status_code == 422
    hint = "not a feature of any served model (see GET /v1/models)"
    assert response.json()["detail"] == [
        {"type": "unknown_feature", "loc": ["body", "features", 0, "seatz"],
         "msg": f"unknown feature 'seatz': {hint}"},
        {"type": "unknown_feature", "loc": ["body", "features", 2, "nps_lats"],
         "msg": f"unknown feature 'nps_lats': {hint}"}]


@pytest.mark.parametrize(("params", "loc", "rule"), [
    ({"kind": "renewal"}, ["query", "kind"], "literal_error"),
    ({"limit": 0}, ["query", "limit"], "greater_than_equal"),
    ({"limit": 10_001}, ["query", "limit"], "less_than_equal"),
    ({"format": "xlsx"}, ["query", "format"], "literal_error"),
])
def test_invalid_list_parameters_are_422(client, params, loc, rule):
    errors = detail(client.get("/v1/opportunities", params=params))
    assert [(e["loc"], e["type"]) for e in errors] == [(loc, rule)]


def test_a_query_parameter_given_twice_is_422(client, generation):
    account = str(generation.scorer.ids[0])
    for path, query in (("/v1/opportunities", "owner=a&limit=5&owner=b"),
                        (f"/v1/accounts/{account}", "reasons=true&reasons=false")):
        name = query.split("=")[0]
        errors = detail(client.get(f"{path}?{query}"))
        assert [(e["loc"], e["type"], e["msg"]) for e in errors] == [
            (["query", name], "too_many_values", "given 2 times; give it once")]


def test_more_accounts_than_the_maximum_is_413(generation, served_data):
    settings = ServingSettings(data_dir=served_data, auth_enabled=False, max_batch_accounts=5)
    ids = [str(a) for a in generation.scorer.ids[:6]]
    with serve(generation, settings) as client:
        assert client.post("/v1/score", json={"account_ids": ids[:5]}).status_code == 200
        for body in ({"account_ids": ids}, {"features": [{"arr": 1.0}] * 6}):
            response = client.post("/v1/score", json=body)
            assert response.status_code == 413
            assert response.json()["detail"] == {
                "error": "too_many_accounts", "message": "6 accounts; at most 5 per call"}


# --- API keys on the real routes --------------------------------------------------------------
@pytest.fixture()
def keyed(generation, served_data, tmp_path: Path):
    path = tmp_path / "keys.json"
    store = KeyStore(path)
    keys = {"read": store.create("crm", "read"), "admin": store.create("ops", "admin")}
    settings = ServingSettings(data_dir=served_data, auth_enabled=True, api_keys_path=path)
    with serve(generation, settings) as client:
        yield client, keys


PROTECTED = [("POST", "/v1/score", {"account_ids": ["A"]}), ("GET", "/v1/accounts/A", None),
             ("GET", "/v1/opportunities", None), ("GET", "/v1/models", None),
             ("POST", "/v1/admin/reload", None)]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_every_api_route_needs_a_key(keyed, method, path, body):
    client, _ = keyed
    response = client.request(method, path, json=body)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"]["error"] == "unauthorized"
    wrong = client.request(method, path, json=body, headers={"X-API-Key": "prop_wrong"})
    assert wrong.status_code == 401


def test_probes_need_no_key(keyed):
    client, _ = keyed
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_a_read_key_scores_but_cannot_reload(keyed, generation):
    client, keys = keyed
    account = str(generation.scorer.ids[0])
    bearer = {"Authorization": f"Bearer {keys['read']}"}
    scored = client.post("/v1/score", json={"account_ids": [account]}, headers=bearer)
    assert scored.status_code == 200
    assert scored.json()["results"][0]["account_id"] == account
    header = client.get(f"/v1/accounts/{account}", headers={"X-API-Key": keys["read"]})
    assert header.status_code == 200
    assert client.get("/v1/opportunities", headers=bearer).status_code == 200
    refused = client.post("/v1/admin/reload", headers=bearer)
    assert refused.status_code == 403
    assert refused.json()["detail"] == {
        "error": "forbidden", "message": "this key has scope read; admin is required"}


def test_an_admin_key_reloads_and_reads(keyed, generation):
    client, keys = keyed
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    reloaded = client.post("/v1/admin/reload", headers=admin)
    assert reloaded.status_code == 200
    assert reloaded.json() == {"reloaded": True, "as_of": generation.scorer.as_of.isoformat(),
                               "model_versions": generation.scorer.versions(), "error": None}
    assert client.get("/v1/models", headers=admin).json()["ready"] is True


def test_columns_and_data_score_like_by_id(client, generation):
    """Column-wise snapshot rows give exactly the items scoring by id gives, reasons included."""
    rows = [0, 1, 2, 3]
    records = [snapshot_record(generation, r) for r in rows]
    columns = sorted(set().union(*records))
    data = [[record.get(c) for c in columns] for record in records]
    ids = [generation.scorer.ids[r] for r in rows]
    by_id = client.post("/v1/score", json={"account_ids": ids}).json()["results"]
    scored = client.post("/v1/score", json={"columns": columns, "data": data})
    assert scored.status_code == 200
    for got, want in zip(scored.json()["results"], by_id, strict=True):
        assert {k: v for k, v in got.items() if k not in ("name", "owner", *INPUT_KEYS)} == {
            k: v for k, v in want.items() if k not in ("name", "owner")}


@pytest.mark.parametrize(("body", "message"), [
    ({"columns": ["arr"], "data": [[1.0, 2.0]]}, "data[0] has 2 values for 1 columns"),
    ({"columns": ["arr", "arr"], "data": [[1.0, 2.0]]}, "arr given more than once"),
    ({"columns": ["arr"]}, "columns and data go together"),
    ({"columns": ["arr"], "data": [[1.0]], "account_ids": ["A"]}, "exactly one of"),
])
def test_bad_column_wise_bodies_are_422(client, body, message):
    response = client.post("/v1/score", json=body)
    assert response.status_code == 422
    assert message in response.text


def test_unknown_column_is_422_at_its_position(client):
    response = client.post("/v1/score", json={"columns": ["arr", "nope"], "data": [[1.0, 2]]})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "columns", 1] and "'nope'" in error["msg"]
