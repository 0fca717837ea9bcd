"""Who may call what: 401 without a valid key, 403 with the wrong scope, nothing leaks."""

from __future__ import annotations

import logging
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, Request, Response
from fastapi.testclient import TestClient

from serving.auth import (
    COOKIE_NAME,
    Authenticator,
    AuthError,
    login_cookie,
    logout_cookie,
    require,
)
from serving.keys import KeyEntry, KeyStore, KeyStoreError
from serving.settings import ServingSettings

NO_KEY = {
    "detail": {
        "error": "unauthorized",
        "message": "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
    }
}
WRONG_KEY = {
    "detail": {"error": "unauthorized", "message": "API key not recognised (unknown or revoked)"}
}
READ_ON_ADMIN = {
    "detail": {"error": "forbidden", "message": "this key has scope read; admin is required"}
}


def make_app(auth: Authenticator) -> FastAPI:
    app = FastAPI()
    app.state.auth = auth

    @app.get("/v1/things")
    async def things(caller: Annotated[KeyEntry | None, Depends(require("read"))]) -> dict:
        return {"caller": caller.name if caller else None}

    @app.post("/v1/admin/reload")
    async def reload(caller: Annotated[KeyEntry | None, Depends(require("admin"))]) -> dict:
        return {"reloaded_by": caller.name if caller else None}

    @app.post("/login")
    async def login(request: Request, response: Response, key: str) -> dict:
        request.app.state.auth.check(key, "read")
        login_cookie(response, key, request)
        return {"ok": True}

    @app.post("/logout")
    async def logout(response: Response) -> dict:
        logout_cookie(response)
        return {"ok": True}

    return app


@pytest.fixture()
def store(tmp_path) -> KeyStore:
    return KeyStore(tmp_path / "api_keys.json")


@pytest.fixture()
def keys(store) -> dict[str, str]:
    return {"read": store.create("crm-sync", "read"), "admin": store.create("ops", "admin")}


@pytest.fixture()
def client(store, keys) -> TestClient:
    return TestClient(make_app(Authenticator(store)))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_no_key_is_401_with_a_bearer_challenge(client):
    r = client.get("/v1/things")
    assert r.status_code == 401
    assert r.json() == NO_KEY
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer prop_not-a-real-key"},
        {"X-API-Key": "prop_not-a-real-key"},
        {"Authorization": "Bearer "},  # empty credentials count as none
    ],
)
def test_wrong_key_is_401(client, headers):
    r = client.get("/v1/things", headers=headers)
    assert r.status_code == 401
    assert r.json() in (WRONG_KEY, NO_KEY)
    assert r.json() == (NO_KEY if headers.get("Authorization") == "Bearer " else WRONG_KEY)
    assert r.headers["www-authenticate"] == "Bearer"


def test_a_key_under_another_http_scheme_is_not_accepted(client, keys):
    r = client.get("/v1/things", headers={"Authorization": f"Basic {keys['read']}"})
    assert r.status_code == 401
    assert r.json() == NO_KEY


def test_bearer_header_is_accepted(client, keys):
    r = client.get("/v1/things", headers=bearer(keys["read"]))
    assert r.status_code == 200
    assert r.json() == {"caller": "crm-sync"}


def test_x_api_key_header_is_accepted(client, keys):
    r = client.get("/v1/things", headers={"X-API-Key": keys["read"]})
    assert r.status_code == 200
    assert r.json() == {"caller": "crm-sync"}


def test_cookie_is_accepted(client, keys):
    client.cookies.set(COOKIE_NAME, keys["read"])
    r = client.get("/v1/things")
    assert r.status_code == 200
    assert r.json() == {"caller": "crm-sync"}


def test_read_key_on_admin_route_is_403(client, keys):
    r = client.post("/v1/admin/reload", headers=bearer(keys["read"]))
    assert r.status_code == 403
    assert r.json() == READ_ON_ADMIN
    assert "www-authenticate" not in r.headers


def test_admin_key_may_read_and_reload(client, keys):
    assert client.get("/v1/things", headers=bearer(keys["admin"])).json() == {"caller": "ops"}
    r = client.post("/v1/admin/reload", headers={"X-API-Key": keys["admin"]})
    assert r.status_code == 200
    assert r.json() == {"reloaded_by": "ops"}


def test_the_bearer_header_wins_over_the_cookie(client, keys):
    client.cookies.set(COOKIE_NAME, keys["admin"])
    r = client.post("/v1/admin/reload", headers=bearer(keys["read"]))
    assert r.status_code == 403


def test_revoked_key_is_refused_without_restart(client, keys, store):
    assert client.get("/v1/things", headers=bearer(keys["read"])).status_code == 200
    KeyStore(store.path).revoke("crm-sync")  # as `propensity keys revoke` does, elsewhere
    r = client.get("/v1/things", headers=bearer(keys["read"]))
    assert r.status_code == 401
    assert r.json() == WRONG_KEY
    assert client.get("/v1/things", headers=bearer(keys["admin"])).status_code == 200


def test_a_key_created_while_running_is_accepted(client, store):
    late = KeyStore(store.path).create("late", "read")
    assert client.get("/v1/things", headers=bearer(late)).json() == {"caller": "late"}


def test_with_no_keys_the_401_says_how_to_create_one(store):
    client = TestClient(make_app(Authenticator(store)))
    r = client.get("/v1/things", headers=bearer("prop_anything"))
    assert r.status_code == 401
    assert r.json()["detail"]["message"] == (
        "no API keys exist on this server yet; "
        "create one with: propensity keys create NAME --scope read"
    )
    assert "propensity keys create" in Authenticator(store).check_key_store()


def test_auth_off_allows_every_request_and_says_so(tmp_path):
    (tmp_path / "api_keys.json").write_text("{corrupt")  # not even read when auth is off
    auth = Authenticator.from_settings(ServingSettings(data_dir=tmp_path, auth_enabled=False))
    assert auth.enabled is False
    assert "authentication is OFF" in auth.check_key_store()
    client = TestClient(make_app(auth))
    assert client.get("/v1/things").json() == {"caller": None}
    r = client.post("/v1/admin/reload", headers=bearer("prop_wrong"))
    assert r.status_code == 200
    assert r.json() == {"reloaded_by": None}


def test_settings_choose_the_keys_file(tmp_path):
    custom = tmp_path / "secrets" / "keys.json"
    assert Authenticator.from_settings(ServingSettings(data_dir=tmp_path)).store.path == (
        tmp_path / "api_keys.json"
    )
    auth = Authenticator.from_settings(ServingSettings(data_dir=tmp_path, api_keys_path=custom))
    assert (auth.enabled, auth.store.path) == (True, custom)


def test_the_key_store_check_counts_keys_and_fails_on_a_corrupt_file(store, keys):
    auth = Authenticator(store)
    assert auth.check_key_store() == f"authentication is on: 2 API key(s) in {store.path}"
    store.path.write_text("{corrupt")
    with pytest.raises(KeyStoreError, match="not valid JSON"):
        auth.check_key_store()


def test_a_corrupt_keys_file_refuses_requests_with_503(client, keys, store, caplog):
    store.path.write_text("{corrupt")
    with caplog.at_level(logging.ERROR, logger="serving.auth"):
        r = client.get("/v1/things", headers=bearer(keys["read"]))
    assert r.status_code == 503
    assert r.json() == {"detail": {
        "error": "auth_unavailable",
        "message": "the API keys file cannot be read; see the server log",
    }}
    assert f"{store.path}: the API keys file is not valid JSON" in caplog.text


def test_keys_never_appear_in_logs_or_bodies(client, keys, caplog):
    caplog.set_level(logging.DEBUG)
    near_miss = keys["admin"][:-2] + "zz"
    bodies = [
        client.get("/v1/things", headers=bearer(keys["read"])).text,
        client.get("/v1/things", headers={"X-API-Key": near_miss}).text,
        client.post("/v1/admin/reload", headers=bearer(keys["read"])).text,
        client.post("/v1/admin/reload", headers={"X-API-Key": keys["admin"]}).text,
    ]
    # The log did record the decisions (so this test can see a leak if there were one) ...
    assert "accepted key crm-sync (scope read) for scope read" in caplog.text
    assert "refused key crm-sync (scope read) for scope admin" in caplog.text
    assert "refused a request for scope read: unknown key" in caplog.text
    # ... and no key, nor its secret part, is in the logs or the responses.
    for secret in (keys["read"], keys["admin"], near_miss):
        assert secret[11:] not in caplog.text
        assert all(secret[11:] not in body for body in bodies)


def test_login_cookie_is_httponly_strict_and_secure_over_https(store, keys):
    client = TestClient(make_app(Authenticator(store)), base_url="https://testserver")
    r = client.post("/login", params={"key": keys["read"]})
    assert r.status_code == 200
    cookie = r.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert cookie.startswith(f"{COOKIE_NAME}={keys['read']};")
    assert {"httponly", "secure", "path", "max-age", "samesite"} <= attributes
    assert "SameSite=strict" in cookie and "Path=/" in cookie and "Max-Age=2592000" in cookie
    assert client.get("/v1/things").json() == {"caller": "crm-sync"}  # the cookie is sent back

    out = client.post("/logout")
    assert f'{COOKIE_NAME}=""' in out.headers["set-cookie"]
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert client.get("/v1/things").status_code == 401


def test_login_cookie_is_not_secure_over_plain_http(client, keys):
    cookie = client.post("/login", params={"key": keys["read"]}).headers["set-cookie"]
    assert "secure" not in cookie.lower()
    assert "HttpOnly" in cookie


def test_check_raises_auth_errors_the_page_can_show(store, keys):
    auth = Authenticator(store)
    assert auth.check(keys["admin"], "read").name == "ops"
    with pytest.raises(AuthError) as info:
        auth.check("prop_wrong", "read")
    assert (info.value.status, info.value.error) == (401, "unauthorized")
    with pytest.raises(AuthError) as info:
        auth.check(keys["read"], "admin")
    assert (info.value.status, info.value.message) == (
        403, "this key has scope read; admin is required"
    )


def test_unknown_scopes_are_a_programming_error(store):
    with pytest.raises(ValueError, match="scope 'root'"):
        require("root")
    with pytest.raises(ValueError, match="scope 'root'"):
        Authenticator(store).check("prop_x", "root")


def test_openapi_declares_both_security_schemes(client):
    schema = client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {
        "type": "http", "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer prop_...`",
    }
    assert schemes["APIKeyHeader"]["type"] == "apiKey"
    assert (schemes["APIKeyHeader"]["in"], schemes["APIKeyHeader"]["name"]) == (
        "header", "X-API-Key"
    )
    expected = [{"HTTPBearer": []}, {"APIKeyHeader": []}]
    assert schema["paths"]["/v1/things"]["get"]["security"] == expected
    assert schema["paths"]["/v1/admin/reload"]["post"]["security"] == expected
    assert "security" not in schema["paths"]["/logout"]["post"]


# --- the page's sign-in cookie only reads -----------------------------------------------------
COOKIE_REFUSED = {"detail": {
    "error": "cookie_not_accepted",
    "message": "the page's sign-in cookie only reads (GET); send the key in "
               "'Authorization: Bearer <key>' or 'X-API-Key: <key>' for this request"}}


def test_an_admin_key_in_the_cookie_cannot_reload(client, keys):
    client.cookies.set(COOKIE_NAME, keys["admin"])
    for origin in ({}, {"Origin": "http://evil.example"}, {"Origin": "http://testserver"}):
        r = client.post("/v1/admin/reload", headers=origin)
        assert (r.status_code, r.json()) == (403, COOKIE_REFUSED)
    assert client.get("/v1/things").json() == {"caller": "ops"}  # it still reads
    r = client.post("/v1/admin/reload", headers={"X-API-Key": keys["admin"]})
    assert r.json() == {"reloaded_by": "ops"}  # the header key is what reloads


def test_the_cookie_is_not_accepted_on_a_post_even_for_reading(store, keys):
    app = make_app(Authenticator(store))

    @app.post("/v1/read-by-post")
    async def read_by_post(caller: Annotated[KeyEntry | None, Depends(require("read"))]) -> dict:
        return {"caller": caller.name if caller else None}

    client = TestClient(app)
    client.cookies.set(COOKIE_NAME, keys["read"])
    r = client.post("/v1/read-by-post")
    assert (r.status_code, r.json()) == (403, COOKIE_REFUSED)
    assert client.post("/v1/read-by-post", headers=bearer(keys["read"])).status_code == 200


def test_with_auth_off_the_cookie_rule_does_not_apply(tmp_path):
    client = TestClient(make_app(Authenticator(KeyStore(tmp_path / "k.json"), enabled=False)))
    client.cookies.set(COOKIE_NAME, "prop_anything")
    assert client.post("/v1/admin/reload").json() == {"reloaded_by": None}


@pytest.mark.parametrize(("trust", "forwarded", "secure"), [
    (True, "https", True),     # a trusted TLS proxy: Secure
    (False, "https", False),   # the header alone, untrusted: not Secure
    (True, "http", False),
    (True, None, False),
])
def test_secure_follows_x_forwarded_proto_only_when_trusted(store, keys, trust, forwarded,
                                                            secure):
    client = TestClient(make_app(Authenticator(store, trust_forwarded_proto=trust)))
    headers = {"X-Forwarded-Proto": forwarded} if forwarded else {}
    cookie = client.post("/login", params={"key": keys["read"]},
                         headers=headers).headers["set-cookie"]
    assert ("; secure" in cookie.lower()) is secure
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
