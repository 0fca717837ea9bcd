"""`POST /v1/admin/reload` is audited: the caller's key name (never the key), the outcome and
why, one JSON line per reload, a failed reload as failed."""

from __future__ import annotations

import hashlib

from fastapi.testclient import TestClient

from features import audit
from serving.app import create_app
from serving.keys import KeyStore
from serving.settings import ServingSettings
from serving.state import Generation, LoadError


class Loader:
    """The generation, or a LoadError once `fail` is set."""

    def __init__(self, generation: Generation):
        self.generation, self.fail = generation, None

    def __call__(self, _settings: ServingSettings) -> Generation:
        if self.fail:
            raise LoadError(self.fail)
        return self.generation


def test_each_reload_appends_one_line_with_the_key_name_and_outcome(
        generation, served_data, tmp_path, audit_log_in_tmp):
    store = KeyStore(tmp_path / "keys.json")
    admin = store.create("ops-admin", "admin")
    read = store.create("crm", "read")
    settings = ServingSettings(data_dir=served_data, auth_enabled=True,
                        api_keys_path=tmp_path / "keys.json")
    assert settings.audit_path == audit_log_in_tmp
    loader = Loader(generation)
    app = create_app(settings, loader=loader, load_on_start=False)
    with TestClient(app) as client:
        bearer = {"Authorization": f"Bearer {admin}"}
        assert client.post("/v1/admin/reload", headers=bearer).status_code == 200
        loader.fail = "no feature snapshot in /x: run `propensity features build`"
        assert client.post("/v1/admin/reload", headers=bearer).status_code == 503
        assert client.post("/v1/admin/reload", headers={
            "Authorization": f"Bearer {read}"}).status_code == 403  # refused: not an action
    records = audit.read(audit_log_in_tmp)
    assert [(r["action"], r["outcome"], r["key_name"], r["actor"]) for r in records] == [
        ("reload", "ok", "ops-admin", "api"), ("reload", "failed", "ops-admin", "api")]
    scorer = generation.scorer
    assert records[0]["detail"] == f"as_of {scorer.as_of.isoformat()}, {scorer.versions()}"
    assert records[1]["detail"] == (
        "LoadError: no feature snapshot in /x: run `propensity features build`")
    text = audit_log_in_tmp.read_text()
    for key in (admin, read):
        assert key not in text and hashlib.sha256(key.encode()).hexdigest() not in text


def test_with_auth_off_a_reload_is_logged_without_a_key_name(generation, served_data,
                                                             audit_log_in_tmp):
    app = create_app(ServingSettings(data_dir=served_data, auth_enabled=False),
                     loader=Loader(generation), load_on_start=False)
    with TestClient(app) as client:
        assert client.post("/v1/admin/reload").status_code == 200
    [entry] = audit.read(audit_log_in_tmp)
    assert (entry["action"], entry["outcome"], entry["key_name"]) == ("reload", "ok", None)
