"""The API documents itself, offline: /docs and /redoc load only this server's files, and the
OpenAPI document lists every error answer each route can give, with examples that are what the
service really sends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.deps import FastJSONRoute, required_scope
from serving.keys import KeyStore
from serving.responses import ErrorBody, ValidationErrorBody
from serving.schemas import ReloadResponse
from serving.settings import ServingSettings
from serving.state import LoadError

MODELS = {"ErrorBody": ErrorBody, "ValidationErrorBody": ValidationErrorBody,
          "ReloadResponse": ReloadResponse}
ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
ANY_URL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+""", re.IGNORECASE)


def no_models(_settings: ServingSettings):
    raise LoadError("no models in this test")


@pytest.fixture()
def app(tmp_path: Path):
    store = KeyStore(tmp_path / "keys.json")
    store.create("crm", "read")
    return create_app(ServingSettings(data_dir=tmp_path, api_keys_path=store.path,
                               max_body_bytes=1000), loader=no_models, load_on_start=False)


@pytest.fixture()
def client(app):
    return TestClient(app)


@pytest.mark.parametrize(("page", "assets"), [
    ("/docs", {"/docs-assets/swagger-ui.css", "/docs-assets/swagger-ui-bundle.js",
               "/docs-assets/favicon.png"}),
    ("/redoc", {"/docs-assets/redoc.standalone.js", "/docs-assets/favicon.png"}),
])
def test_the_docs_pages_load_only_this_servers_files(client, page, assets):
    html = client.get(page)
    assert html.status_code == 200
    assert ANY_URL.findall(html.text) == []  # no CDN, no fonts, no host at all
    assert set(ASSET.findall(html.text)) == assets
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200 and len(served.content) > 1000, asset
    assert "'/openapi.json'" in html.text or '"/openapi.json"' in html.text


def test_swagger_ui_does_not_call_the_online_validator(client):
    assert '"validatorUrl": null' in client.get("/docs").text


def api_routes(routes) -> list[APIRoute]:
    """Every APIRoute, inside included routers too (FastAPI 0.16x keeps them nested)."""
    found = []
    for route in routes:
        nested = getattr(route, "original_router", None)
        found += api_routes(nested.routes) if nested is not None else (
            [route] if isinstance(route, APIRoute) else [])
    return found


def operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def test_every_route_documents_each_error_it_can_answer(app, client):
    schema = client.get("/openapi.json").json()
    scopes = {f"{m} {r.path}": required_scope(r.dependant) for r in api_routes(app.routes)
              for m in r.methods}
    assert scopes["POST /v1/admin/reload"] == "admin" and scopes["GET /v1/models"] == "read"
    documented = {name: set(op["responses"]) for name, op in operations(schema)}
    for name, operation in operations(schema):
        expected = set()
        if scopes.get(name) is not None:
            expected |= {"401", "503"}
            if scopes[name] == "admin" or not name.startswith("GET"):
                expected.add("403")  # a read key on an admin route; the sign-in cookie on POST
        if "requestBody" in operation:
            expected |= {"413", "422"}
        if operation.get("parameters"):
            expected.add("422")
        if any(p["in"] == "path" for p in operation.get("parameters", ())):
            expected.add("404")
        assert expected <= documented[name], (name, expected - documented[name])
    assert {"401", "403", "409", "503"} <= documented["POST /v1/admin/reload"]
    assert documented["POST /v1/score"] >= {"401", "403", "413", "422", "503"}
    assert documented["GET /v1/accounts/{account_id}"] >= {"401", "404", "422", "503"}


def test_every_documented_error_has_examples_that_fit_its_schema(client):
    schema = client.get("/openapi.json").json()
    checked = 0
    for name, operation in operations(schema):
        for status, response in operation["responses"].items():
            if not status.startswith(("4", "5")) or status == "400" or name == "GET /readyz":
                continue
            content = response["content"]["application/json"]
            model = MODELS[content["schema"]["$ref"].rsplit("/", 1)[-1]]
            assert content["examples"], (name, status)
            for example in content["examples"].values():
                model.model_validate(example["value"])
                checked += 1
    assert checked >= 30


def example(schema: dict, name: str, status: int, which: str) -> dict:
    method, path = name.split(" ", 1)
    content = schema["paths"][path][method.lower()]["responses"][str(status)]["content"]
    return content["application/json"]["examples"][which]["value"]


def test_the_examples_are_what_the_service_answers(client):
    schema = client.get("/openapi.json").json()
    no_key = client.post("/v1/score", json={"account_ids": ["A"]})
    assert no_key.json() == example(schema, "POST /v1/score", 401, "missing")
    unknown = client.get("/v1/models", headers={"X-API-Key": "prop_nope"})
    assert unknown.json() == example(schema, "GET /v1/models", 401, "unknown")
    client.cookies.set("propensity_key", "prop_whatever")
    cookie = client.post("/v1/admin/reload")
    assert cookie.json() == example(schema, "POST /v1/admin/reload", 403, "cookie")
    client.cookies.clear()
    big = client.post("/v1/score", content=b"{" + b" " * 2000 + b"}",
                      headers={"content-type": "application/json"})
    assert big.status_code == 413
    assert big.json() == {"detail": {"error": "body_too_large", "message": (
        "request body is 2,002 bytes; at most 1,000 bytes (max_body_bytes): send big batches "
        "column-wise (columns + data) or split them")}}
    documented = example(schema, "POST /v1/score", 413, "body_too_large")["detail"]
    assert documented["error"] == "body_too_large"
    assert documented["message"].endswith(big.json()["detail"]["message"].split("1,000")[1])


def test_routes_with_a_body_and_a_key_check_the_key_before_reading_it(app):
    """FastAPI reads a body before a route's dependencies run; FastJSONRoute checks first."""
    guarded = [r for r in api_routes(app.routes) if r.body_field is not None
               and required_scope(r.dependant) is not None]
    assert [r.path for r in guarded] == ["/v1/score"]
    assert all(isinstance(r, FastJSONRoute) for r in guarded)



def test_the_history_routes_examples_are_what_it_answers(tmp_path):
    open_app = create_app(ServingSettings(data_dir=tmp_path, auth_enabled=False),
                          loader=no_models, load_on_start=False)
    client = TestClient(open_app)
    schema = client.get("/openapi.json").json()
    name = "GET /v1/accounts/{account_id}/history"
    for status, which, params in (
            (422, "not_a_date", {"from": "01/03/2025"}),
            (422, "reversed", {"from": "2025-06-01", "to": "2025-05-01"}),
            (404, "unknown_account", {})):
        answer = client.get("/v1/accounts/A9999999/history", params=params)
        assert answer.status_code == status
        assert answer.json() == example(schema, name, status, which)
