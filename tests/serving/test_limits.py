"""Requests cannot exhaust the server: the key is checked before the body is read, bodies over
``max_body_bytes`` get 413 unread, and a 422 never echoes a large input back.

Streaming cases drive the ASGI app directly with a body that is handed out chunk by chunk and
counts how many chunks the app asked for (the TestClient reads a streamed body in full before
the app sees it, so it could not show what was left unread).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from features.build import feature_groups
from features.catalogue import all_features
from serving.app import create_app
from serving.keys import KeyStore
from serving.limits import BODY_OVERHEAD_BYTES, BYTES_PER_ACCOUNT, body_limit
from serving.settings import ServingSettings

CHUNK = b"x" * 65536
LIMIT = 1_000_000


class Streamed:
    """An ASGI request body of `chunks` chunks of 64 KiB, counting the chunks read."""

    def __init__(self, chunks: int) -> None:
        self.chunks, self.read = chunks, 0

    async def receive(self) -> dict:
        if self.read >= self.chunks:
            return {"type": "http.disconnect"}
        self.read += 1
        return {"type": "http.request", "body": CHUNK, "more_body": self.read < self.chunks}


def call(app, method: str, path: str, headers: dict[str, str], body: Streamed
         ) -> tuple[int, dict]:
    """One request through the ASGI app: its status and JSON body."""
    answer: dict = {"body": b""}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "server": ("testserver", 80),
             "client": ("testclient", 50000),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(app(scope, body.receive, send))
    return answer["status"], json.loads(answer["body"])


@pytest.fixture()
def keyed_app(tmp_path: Path):
    """The real app with auth on, a 1 MB body limit and no generation loaded (none of these
    requests may get as far as scoring)."""
    store = KeyStore(tmp_path / "keys.json")
    keys = {"read": store.create("crm", "read"), "admin": store.create("ops", "admin")}
    settings = ServingSettings(data_dir=tmp_path, api_keys_path=store.path, max_body_bytes=LIMIT)
    return create_app(settings, loader=lambda _s: None, load_on_start=False), keys


TOO_LARGE = ("request body is larger; at most 1,000,000 bytes (max_body_bytes): send big "
             "batches column-wise (columns + data) or split them")


def test_a_declared_length_over_the_limit_is_413_before_a_byte_is_read(keyed_app):
    app, keys = keyed_app
    body = Streamed(chunks=3000)  # 196 MB, like the probe
    status, answer = call(app, "POST", "/v1/score", {
        "content-type": "application/json", "content-length": str(3000 * len(CHUNK)),
        "authorization": f"Bearer {keys['read']}"}, body)
    assert (status, body.read) == (413, 0)
    assert answer == {"detail": {"error": "body_too_large", "message": (
        "request body is 196,608,000 bytes; at most 1,000,000 bytes (max_body_bytes): send "
        "big batches column-wise (columns + data) or split them")}}


def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit(keyed_app):
    app, keys = keyed_app
    body = Streamed(chunks=3000)  # chunked: no Content-Length
    status, answer = call(app, "POST", "/v1/score", {
        "content-type": "application/json", "transfer-encoding": "chunked",
        "authorization": f"Bearer {keys['read']}"}, body)
    assert status == 413
    assert answer == {"detail": {"error": "body_too_large", "message": TOO_LARGE}}
    assert body.read == LIMIT // len(CHUNK) + 1  # the chunk that passed 1 MB, not one more


def test_the_sign_in_form_is_limited_too(keyed_app):
    app, _ = keyed_app
    body = Streamed(chunks=3000)
    status, answer = call(app, "POST", "/login", {
        "content-type": "application/x-www-form-urlencoded", "transfer-encoding": "chunked"},
        body)
    assert (status, answer["detail"]["error"]) == (413, "body_too_large")
    assert body.read == LIMIT // len(CHUNK) + 1


@pytest.mark.parametrize("headers", [
    {},  # no key
    {"authorization": "Bearer prop_not-a-key"},
    {"x-api-key": "prop_not-a-key"},
])
def test_an_unauthenticated_body_gets_401_without_being_read(keyed_app, headers):
    app, _ = keyed_app
    for extra in ({"transfer-encoding": "chunked"}, {"content-length": str(10 * len(CHUNK))}):
        body = Streamed(chunks=10 if "content-length" in extra else 3000)
        status, answer = call(app, "POST", "/v1/score",
                              {"content-type": "application/json", **headers, **extra}, body)
        assert (status, answer["detail"]["error"], body.read) == (401, "unauthorized", 0)


def test_the_sign_in_cookie_on_a_post_is_refused_without_reading_the_body(keyed_app):
    app, keys = keyed_app
    body = Streamed(chunks=3000)
    status, answer = call(app, "POST", "/v1/score", {
        "content-type": "application/json", "transfer-encoding": "chunked",
        "cookie": f"propensity_key={keys['read']}"}, body)
    assert (status, answer["detail"]["error"], body.read) == (403, "cookie_not_accepted", 0)


def test_the_default_limit_fits_the_largest_legal_column_wise_batch():
    """One column-wise row of every catalogue feature at its widest JSON value fits in
    BYTES_PER_ACCOUNT, and the `columns` list of every name in the overhead, so a full batch of
    `max_batch_accounts` such rows is under the default limit."""
    features = all_features(feature_groups(ServingSettings().feature_spec()))
    columns = [f.name for f in features] + ["account_id", "held_products"]
    row = [("x" * 64 if f.dtype == "string" else -1.7976931348623157e308) for f in features]
    row += ["A" * 200, ["core", "analytics", "automation", "integrations"]]
    assert len(json.dumps(row)) + 2 <= BYTES_PER_ACCOUNT  # ", " between rows
    assert len(json.dumps({"columns": columns, "tasks": ["churn", "upsell", "cross-sell"],
                           "reasons": False, "data": []})) <= BODY_OVERHEAD_BYTES
    defaults = ServingSettings()
    assert body_limit(defaults.max_body_bytes, defaults.max_batch_accounts) \
        == 10_000 * 4096 + 65536 == 41_025_536
    assert body_limit(None, 100) == 100 * 4096 + 65536
    assert body_limit(5000, 100) == 5000


def test_a_full_batch_at_the_default_limit_is_not_refused_for_its_size(tmp_path):
    """max_batch_accounts widest rows pass the body limit (and reach validation: 422 here, as
    the app has no models to know the features by)."""
    settings = ServingSettings(data_dir=tmp_path, auth_enabled=False, max_batch_accounts=50)
    app = create_app(settings, loader=lambda _s: None, load_on_start=False)
    features = all_features(feature_groups(settings.feature_spec()))
    row = [("x" * 64 if f.dtype == "string" else -1.7976931348623157e308) for f in features]
    body = json.dumps({"columns": [f.name for f in features],
                       "data": [row] * 50}).encode()
    assert len(body) > 50 * 2000  # a real full batch, not a token one
    with TestClient(app) as client:
        response = client.post("/v1/score", content=body,
                               headers={"content-type": "application/json"})
        assert response.status_code == 503  # past the limit and the key; no models loaded
        over = client.post("/v1/score", content=b" " * (body_limit(None, 50) + 1),
                           headers={"content-type": "application/json"})
        assert over.status_code == 413


# --- 422 bodies stay small --------------------------------------------------------------------
@pytest.fixture()
def client(generation, served_data):
    app = create_app(ServingSettings(data_dir=served_data, auth_enabled=False),
                     loader=lambda _s: generation, load_on_start=False)
    assert app.state.holder.reload() == (True, None)
    with TestClient(app) as c:
        yield c


BIG = "é" * 1_000_000  # 2 MB of UTF-8
PREFIX = '{"account_ids":["A"],"features":[{"arr":1.0,"note":"'


@pytest.mark.parametrize(("body", "loc", "rule", "excerpt"), [
    ({"account_ids": [BIG]}, ["body", "account_ids", 0], "string_too_long", "é" * 80 + "…"),
    ({"account_ids": ["A"], "note": BIG}, ["body", "note"], "extra_forbidden", "é" * 80 + "…"),
    ({"account_ids": ["A"], "tasks": [BIG]}, ["body", "tasks", 0], "literal_error",
     "é" * 80 + "…"),
    ({"account_ids": ["A"], "features": [{"arr": 1.0, "note": BIG}]}, ["body"], "value_error",
     PREFIX + "é" * (80 - len(PREFIX)) + "…"),  # the whole body's JSON, cut
])
def test_a_422_for_a_huge_value_carries_an_excerpt_not_the_input(client, body, loc, rule,
                                                                  excerpt):
    response = client.post("/v1/score", content=orjson.dumps(body),
                           headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert len(response.content) < 1024
    [error] = response.json()["detail"]
    assert (error["loc"], error["type"], error["input"]) == (loc, rule, excerpt)


def test_a_huge_body_that_is_not_json_is_cut_too(client):
    response = client.post("/v1/score", content=b"a" * 1_000_000,
                           headers={"content-type": "text/plain"})
    assert response.status_code == 422
    assert len(response.content) < 1024
    [error] = response.json()["detail"]
    assert (error["loc"], error["type"], error["input"]) == (
        ["body"], "model_attributes_type", "a" * 80 + "…")


def test_a_huge_feature_name_is_cut_in_the_path_and_message(client):
    response = client.post("/v1/score", json={"features": [{"x" * 1_000_000: 1.0}]})
    assert response.status_code == 422
    assert len(response.content) < 1024
    [error] = response.json()["detail"]
    assert error["type"] == "unknown_feature"
    assert error["loc"] == ["body", "features", 0, "x" * 80 + "…"]
    assert error["msg"] == "unknown feature '" + "x" * 283 + "…"


def test_short_inputs_are_still_shown_whole(client):
    response = client.post("/v1/score", json={"account_ids": ["A"], "tasks": ["retention"],
                                              "reasons": [1, 2]})
    errors = {e["loc"][-2 if e["loc"][-1] == 0 else -1]: e for e in response.json()["detail"]}
    assert errors["tasks"]["input"] == "retention"
    assert errors["tasks"]["ctx"] == {"expected": "'churn', 'upsell' or 'cross-sell'"}
    assert errors["reasons"]["input"] == [1, 2]


def test_a_rule_context_stays_a_list_cut_to_its_first_items():
    from serving.errors import CONTEXT_ITEMS, safe_error

    known = [f"value-{i}" for i in range(100)] + ["x" * 1000]
    error = safe_error({"type": "unknown_category", "loc": ["body"], "msg": "m",
                        "ctx": {"known": known, "note": "y" * 1000}})
    assert error["ctx"]["known"] == known[:CONTEXT_ITEMS]
    assert error["ctx"]["note"] == "y" * 80 + "…"
