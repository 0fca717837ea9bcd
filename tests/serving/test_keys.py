"""The key store keeps only digests, writes atomically, and says clearly what is wrong."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat

import pytest
from typer.testing import CliRunner

from serving import keys as keys_module
from serving.keys import KeyEntry, KeyStore, KeyStoreError
from serving.keys_cli import keys_app

KEY_FORMAT = re.compile(r"^prop_[A-Za-z0-9_-]{43}$")
runner = CliRunner()


@pytest.fixture()
def store(tmp_path) -> KeyStore:
    return KeyStore(tmp_path / "api_keys.json")


def test_create_returns_a_256_bit_key_that_looks_up_its_entry(store):
    key = store.create("crm-sync", "read")
    assert KEY_FORMAT.match(key)
    entry = store.lookup(key)
    assert entry == KeyEntry("crm-sync", "read", entry.created_at, key[:11])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", entry.created_at)
    assert store.create("other", "read") != key


def test_lookup_refuses_wrong_empty_and_oversized_keys(store):
    key = store.create("crm-sync", "read")
    assert store.lookup(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.lookup("") is None
    assert store.lookup(key + "x" * 300) is None
    assert KeyStore(store.path.parent / "absent.json").lookup(key) is None


def test_the_file_holds_the_sha256_digest_and_never_the_key(store):
    key = store.create("crm-sync", "admin")
    text = store.path.read_text()
    assert key not in text
    assert key[11:] not in text  # not even the secret part after the shown prefix
    [record] = json.loads(text)["keys"]
    assert record["sha256"] == hashlib.sha256(key.encode()).hexdigest()
    assert record["prefix"] == key[:11]
    assert (record["name"], record["scope"]) == ("crm-sync", "admin")


def test_entries_show_neither_key_nor_digest(store):
    key = store.create("crm-sync", "read")
    [entry] = store.list()
    hexdigest = hashlib.sha256(key.encode()).hexdigest()
    assert key not in repr(entry) and hexdigest not in repr(entry)
    assert set(vars(entry)) == {"name", "scope", "created_at", "prefix"}


def test_list_keeps_creation_order_and_revoke_removes_one(store):
    a = store.create("a", "read")
    b = store.create("b", "admin")
    assert [(e.name, e.scope) for e in store.list()] == [("a", "read"), ("b", "admin")]
    revoked = store.revoke("a")
    assert (revoked.name, revoked.scope) == ("a", "read")
    assert [e.name for e in store.list()] == ["b"]
    assert store.lookup(a) is None
    assert store.lookup(b).name == "b"


def test_admin_implies_read_but_not_the_reverse():
    assert KeyEntry("x", "admin", "", "").allows("read")
    assert KeyEntry("x", "admin", "", "").allows("admin")
    assert KeyEntry("x", "read", "", "").allows("read")
    assert not KeyEntry("x", "read", "", "").allows("admin")


def test_duplicate_name_is_refused_and_the_file_is_unchanged(store):
    store.create("crm-sync", "read")
    before = store.path.read_bytes()
    with pytest.raises(KeyStoreError, match="a key named 'crm-sync' already exists"):
        store.create("crm-sync", "admin")
    assert store.path.read_bytes() == before


def test_revoking_an_unknown_name_says_which_names_exist(store):
    store.create("a", "read")
    with pytest.raises(KeyStoreError, match=r"no key named 'b' \(keys: a\)"):
        store.revoke("b")
    with pytest.raises(KeyStoreError, match=r"no key named 'b' \(keys: none\)"):
        KeyStore(store.path.parent / "empty.json").revoke("b")


@pytest.mark.parametrize(
    ("name", "scope", "message"),
    [
        ("", "read", "key name ''"),
        ("has space", "read", "key name 'has space'"),
        ("-leading", "read", "key name '-leading'"),
        ("x" * 65, "read", "use 1-64 letters"),
        ("ok", "root", "scope 'root': choose one of read, admin"),
    ],
)
def test_bad_names_and_scopes_are_refused(store, name, scope, message):
    with pytest.raises(KeyStoreError, match=re.escape(message)):
        store.create(name, scope)
    assert not store.path.exists()


def test_file_mode_is_0600_whatever_the_umask(store):
    old = os.umask(0)
    try:
        store.create("a", "read")
        store.revoke("a")  # a rewrite keeps the mode too
    finally:
        os.umask(old)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_a_failed_write_leaves_the_old_file_whole_and_no_temp_file(store, monkeypatch):
    store.create("a", "read")
    before = store.path.read_bytes()

    def broken_dump(data, fh, **kwargs):
        fh.write('{"version": 1, "keys": [')  # half a file, then the disk "fills up"
        raise OSError("No space left on device")

    monkeypatch.setattr(keys_module.json, "dump", broken_dump)
    with pytest.raises(KeyStoreError, match=re.escape(
            f"{store.path}: cannot write the API keys file (No space left on device); "
            "it is unchanged")):
        store.create("b", "read")
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    assert sorted(p.name for p in store.path.parent.iterdir()) == [
        "api_keys.json", "api_keys.json.lock"
    ]
    assert [e.name for e in store.list()] == ["a"]


def test_a_change_by_another_process_is_seen_without_a_new_store(store):
    key = store.create("a", "read")
    assert store.lookup(key).name == "a"  # cached now
    KeyStore(store.path).revoke("a")  # e.g. `propensity keys revoke a` in another process
    assert store.lookup(key) is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "the API keys file is not valid JSON (line 1"),
        ("[]", "not an API keys file"),
        ('{"version": 2, "hash": "sha256", "keys": []}', "unsupported API keys file (version 2"),
        ('{"version": 1, "hash": "sha256", "keys": [{"name": "a"}]}',
         "keys[0]: missing field(s) scope, created_at, prefix, sha256"),
        ('{"version": 1, "hash": "sha256", "keys": [{"name": "a", "scope": "root", '
         '"created_at": "", "prefix": "", "sha256": "' + "0" * 64 + '"}]}',
         "keys[0]: scope 'root' is not one of"),
        ('{"version": 1, "hash": "sha256", "keys": [{"name": "a", "scope": "read", '
         '"created_at": "", "prefix": "", "sha256": "abc"}]}',
         "keys[0]: sha256 is not 64 lowercase hex digits"),
    ],
)
def test_a_corrupt_file_is_an_error_naming_the_file(store, content, message):
    store.path.write_text(content)
    for action in (store.list, lambda: store.lookup("prop_x"), lambda: store.create("b", "read")):
        with pytest.raises(KeyStoreError) as info:
            action()
        assert str(info.value).startswith(f"{store.path}: ")
        assert message in str(info.value)
    assert store.path.read_text() == content  # create did not overwrite it


# -- the CLI ---------------------------------------------------------------------------------

def run(*args: str):
    return runner.invoke(keys_app, list(args))


def test_cli_create_prints_the_key_once_and_stores_its_digest(tmp_path):
    result = run("create", "crm-sync", "--scope", "admin", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert KEY_FORMAT.match(key)
    assert "cannot be shown again" in result.stderr
    entry = KeyStore(tmp_path / "api_keys.json").lookup(key)
    assert (entry.name, entry.scope) == ("crm-sync", "admin")

    listed = run("list", "--data-dir", str(tmp_path))
    assert listed.exit_code == 0, listed.output
    assert "crm-sync" in listed.stdout and "admin" in listed.stdout
    assert key[:11] in listed.stdout
    assert key not in listed.output
    assert hashlib.sha256(key.encode()).hexdigest() not in listed.output


def test_cli_default_scope_is_read_and_settings_path_is_honoured(tmp_path, monkeypatch):
    path = tmp_path / "elsewhere" / "keys.json"
    monkeypatch.setenv("PROPENSITY_API_KEYS_PATH", str(path))
    result = run("create", "crm-sync", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert KeyStore(path).lookup(result.stdout.strip()).scope == "read"
    assert not (tmp_path / "api_keys.json").exists()


def test_cli_errors_exit_non_zero_with_a_clear_message(tmp_path):
    d = str(tmp_path)
    assert run("create", "a", "--data-dir", d).exit_code == 0
    dup = run("create", "a", "--data-dir", d)
    assert dup.exit_code == 1
    assert "a key named 'a' already exists" in dup.stderr
    assert dup.stdout == ""
    unknown = run("revoke", "zz", "--data-dir", d)
    assert unknown.exit_code == 1
    assert "no key named 'zz' (keys: a)" in unknown.stderr
    bad_scope = run("create", "b", "--scope", "root", "--data-dir", d)
    assert bad_scope.exit_code == 2
    (tmp_path / "api_keys.json").write_text("{broken")
    corrupt = run("list", "--data-dir", d)
    assert corrupt.exit_code == 1
    assert f"{tmp_path / 'api_keys.json'}: the API keys file is not valid JSON" in corrupt.stderr


def test_cli_revoke_and_empty_list(tmp_path):
    d = str(tmp_path)
    key = run("create", "a", "--data-dir", d).stdout.strip()
    revoked = run("revoke", "a", "--data-dir", d)
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked key a ({key[:11]}..., scope read)" in revoked.stdout
    assert KeyStore(tmp_path / "api_keys.json").lookup(key) is None
    empty = run("list", "--data-dir", d)
    assert empty.exit_code == 0
    assert "no API keys in" in empty.stdout and "propensity keys create" in empty.stdout


def test_keys_commands_are_mounted_on_the_propensity_command(tmp_path):
    from propensity_cli import app

    result = runner.invoke(app, ["keys", "create", "ops", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert KEY_FORMAT.match(result.stdout.strip())


def full_disk(monkeypatch) -> None:
    """Every write of the keys file fails as on a full disk, after half a file is written."""
    def dump(data, fh, **kwargs):
        fh.write('{"version": 1, "keys": [')
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(keys_module.json, "dump", dump)


@pytest.mark.parametrize("args", [("create", "b", "--scope", "admin"), ("revoke", "a")])
def test_cli_on_a_full_disk_is_one_line_and_the_file_is_unchanged(tmp_path, monkeypatch, args):
    d = str(tmp_path)
    assert run("create", "a", "--data-dir", d).exit_code == 0
    path = tmp_path / "api_keys.json"
    before = path.read_bytes()
    full_disk(monkeypatch)
    result = run(*args, "--data-dir", d)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # no escaped OSError, no traceback
    assert result.stdout == ""  # no key printed for a key that was not stored
    assert result.stderr == (f"error: {path}: cannot write the API keys file "
                             "(No space left on device); it is unchanged\n")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "api_keys.json", "api_keys.json.lock", "audit.log"]


def test_key_commands_are_audited_by_name_never_by_key(tmp_path, monkeypatch):
    from features import audit

    d = str(tmp_path)
    key = run("create", "crm-sync", "--scope", "admin", "--data-dir", d).stdout.strip()
    assert run("create", "crm-sync", "--data-dir", d).exit_code == 1  # a duplicate: failed
    assert run("revoke", "crm-sync", "--data-dir", d).exit_code == 0
    assert run("revoke", key, "--data-dir", d).exit_code == 1  # the key pasted as a name
    full_disk(monkeypatch)
    assert run("create", "later", "--data-dir", d).exit_code == 1
    text = (tmp_path / "audit.log").read_text()
    assert key not in text and hashlib.sha256(key.encode()).hexdigest() not in text
    records = audit.read(tmp_path / "audit.log")
    assert [(r["action"], r["outcome"], r["key_name"]) for r in records] == [
        ("key_create", "ok", "crm-sync"),
        ("key_create", "failed", "crm-sync"),
        ("key_revoke", "ok", "crm-sync"),
        ("key_revoke", "failed", f"{key[:11]}..."),
        ("key_create", "failed", "later"),
    ]
    assert [r["detail"] for r in records] == [
        "scope admin",
        f"{tmp_path / 'api_keys.json'}: a key named 'crm-sync' already exists "
        "(revoke it first, or choose another name)",
        "scope admin",
        f"{tmp_path / 'api_keys.json'}: no key named '{key[:11]}...' (keys: none)",
        f"{tmp_path / 'api_keys.json'}: cannot write the API keys file "
        "(No space left on device); it is unchanged",
    ]
    assert {r["actor"] for r in records} == {audit.cli_actor()}


def test_the_audit_log_path_is_a_setting(tmp_path, monkeypatch):
    path = tmp_path / "elsewhere" / "admin.jsonl"
    monkeypatch.setenv("PROPENSITY_AUDIT_LOG_PATH", str(path))
    assert run("create", "a", "--data-dir", str(tmp_path)).exit_code == 0
    assert [r["action"] for r in json_lines(path)] == ["key_create"]
    assert not (tmp_path / "audit.log").exists()


def json_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]
