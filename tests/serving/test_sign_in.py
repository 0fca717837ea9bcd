"""The page's sign-in form on the real app: refused when posted from another origin (a sibling
port or host of the same site can post it with the victim's browser), accepted from its own
origin; the cookie it sets is Secure on https and only reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.auth import COOKIE_NAME
from serving.keys import KeyStore
from serving.settings import ServingSettings
from serving.state import LoadError


def no_models(_settings: ServingSettings):
    raise LoadError("no models in this test")


def page_client(tmp_path: Path, base_url: str = "http://testserver", **settings
                ) -> tuple[TestClient, dict[str, str]]:
    store = KeyStore(tmp_path / "keys.json")
    keys = {"read": store.create("am", "read"), "admin": store.create("ops", "admin")}
    app = create_app(ServingSettings(data_dir=tmp_path, api_keys_path=store.path, **settings),
                     loader=no_models, load_on_start=False)
    return TestClient(app, base_url=base_url, follow_redirects=False), keys


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "http://testserver:8080"},       # another port of the same host
    {"Origin": "http://reports.testserver"},    # another host of the same site
    {"Origin": "https://testserver"},           # another scheme
    {"Origin": "null"},
    {"Referer": "http://evil.example/form.html"},
])
def test_a_sign_in_posted_from_another_origin_is_refused(tmp_path, headers):
    client, keys = page_client(tmp_path)
    r = client.post("/login", data={"key": keys["admin"]}, headers=headers)
    assert r.status_code == 403
    assert "set-cookie" not in r.headers
    sent = headers.get("Origin") or headers["Referer"]
    assert f"Sign-in refused: the form was sent from {sent}, not from this site." in r.text


@pytest.mark.parametrize("headers", [
    {"Origin": "http://testserver"},
    {"Origin": "http://testserver:80"},
    {"Referer": "http://testserver/?kind=churn"},
    {},  # not a browser's cross-site post: browsers send Origin on every cross-origin POST
])
def test_a_sign_in_from_this_origin_sets_the_cookie(tmp_path, headers):
    client, keys = page_client(tmp_path)
    r = client.post("/login", data={"key": keys["read"]}, headers=headers)
    assert (r.status_code, r.headers["location"]) == (303, "/")
    assert r.headers["set-cookie"].startswith(f"{COOKIE_NAME}={keys['read']};")


def test_sign_out_from_another_origin_is_refused(tmp_path):
    client, keys = page_client(tmp_path)
    client.cookies.set(COOKIE_NAME, keys["read"])
    r = client.post("/logout", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "set-cookie" not in r.headers
    assert client.post("/logout", headers={"Origin": "http://testserver"}).status_code == 303


def test_an_admin_key_signed_in_on_the_page_cannot_reload(tmp_path):
    client, keys = page_client(tmp_path)
    signed_in = client.post("/login", data={"key": keys["admin"]},
                            headers={"Origin": "http://testserver"})
    assert signed_in.status_code == 303
    for origin in ("http://evil.example", "http://testserver"):
        r = client.post("/v1/admin/reload", headers={"Origin": origin})
        assert r.status_code == 403
        assert r.json()["detail"]["error"] == "cookie_not_accepted"
    assert client.get("/v1/models").status_code == 200  # the cookie reads
    header = client.post("/v1/admin/reload", headers={"X-API-Key": keys["admin"]})
    assert header.status_code == 503  # the header key reaches the reload (which fails here)
    assert header.json()["error"] == "LoadError: no models in this test"


def test_behind_a_trusted_tls_proxy_the_https_origin_matches_and_the_cookie_is_secure(tmp_path):
    client, keys = page_client(tmp_path, trust_forwarded_proto=True)
    r = client.post("/login", data={"key": keys["read"]},
                    headers={"Origin": "https://testserver", "X-Forwarded-Proto": "https"})
    assert r.status_code == 303
    assert "; secure" in r.headers["set-cookie"].lower()


def test_an_untrusted_x_forwarded_proto_changes_nothing(tmp_path):
    client, keys = page_client(tmp_path)
    r = client.post("/login", data={"key": keys["read"]},
                    headers={"Origin": "https://testserver", "X-Forwarded-Proto": "https"})
    assert r.status_code == 403  # this server is http as far as it can tell
    plain = client.post("/login", data={"key": keys["read"]},
                        headers={"Origin": "http://testserver", "X-Forwarded-Proto": "https"})
    assert plain.status_code == 303
    assert "secure" not in plain.headers["set-cookie"].lower()


def test_over_https_the_cookie_is_secure(tmp_path):
    client, keys = page_client(tmp_path, base_url="https://testserver")
    r = client.post("/login", data={"key": keys["read"]},
                    headers={"Origin": "https://testserver"})
    assert r.status_code == 303
    assert "; secure" in r.headers["set-cookie"].lower()
