"""``propensity keys``: create, list and revoke the scoring API's keys (stored hashed)."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table as RichTable

from features import audit
from features.cli_options import DataDir, console, fail, out, settings_of
from serving.keys import KEY_PREFIX, SHOWN_CHARS, KeyStore, KeyStoreError

if TYPE_CHECKING:  # pydantic-settings costs ~0.5 s to import: not for `--help`
    from serving.settings import ServingSettings

keys_app = typer.Typer(
    help="API keys for the scoring API: read (scores, lists) or admin (reload).",
    no_args_is_help=True,
)


class ScopeChoice(StrEnum):
    read = "read"
    admin = "admin"


def load_settings(data_dir: Path | None) -> ServingSettings:
    """Serving's settings from env / TOML, with the command line's --data-dir on top."""
    from serving.settings import ServingSettings

    return settings_of(ServingSettings, data_dir)


# A whole key where a name belongs (`keys revoke prop_...` pasted by mistake) is never logged.
KEY_SHAPED = re.compile(rf"{KEY_PREFIX}[A-Za-z0-9_-]{{43}}")


def _audit(audit_path: Path, action: audit.Action, name: str, error: str | None,
           detail: str = "") -> None:
    """One audit line for a key command: the key's name, never the key."""
    def shown(key: str) -> str:
        return key[: len(KEY_PREFIX) + SHOWN_CHARS] + "..."  # as `keys list` shows keys

    name = KEY_SHAPED.sub(lambda m: shown(m.group()), name)
    text = KEY_SHAPED.sub(lambda m: shown(m.group()), error or detail)
    audit.record(audit_path, action, error is None, key_name=name,
                 actor=audit.cli_actor(), detail=text)


@keys_app.command("create")
def create_cmd(
    name: Annotated[str, typer.Argument(help="Who or what uses the key, e.g. crm-sync.")],
    scope: Annotated[
        ScopeChoice, typer.Option(help="read: scores and lists; admin: also reload.")
    ] = ScopeChoice.read,
    data_dir: DataDir = None,
) -> None:
    """Create a key and print it once (only its SHA-256 digest is stored)."""
    settings = load_settings(data_dir)
    store = KeyStore(settings.keys_path)
    try:
        key = store.create(name, scope.value)
    except KeyStoreError as exc:
        _audit(settings.audit_path, "key_create", name, str(exc))
        fail(str(exc))
    _audit(settings.audit_path, "key_create", name, None, f"scope {scope.value}")
    # The key alone on stdout, so `KEY=$(propensity keys create ...)` works; the note on stderr.
    typer.echo(key)
    console.print(
        f"created key [bold]{name}[/bold] (scope {scope.value}) in {store.path}. "
        "Copy it now: it cannot be shown again.",
        highlight=False, soft_wrap=True,
    )


@keys_app.command("list")
def list_cmd(data_dir: DataDir = None) -> None:
    """List keys: name, scope, creation time and the key's first characters (not the key)."""
    store = KeyStore(load_settings(data_dir).keys_path)
    try:
        entries = store.list()
    except KeyStoreError as exc:
        fail(str(exc))
    if not entries:
        out.print(f"no API keys in {store.path}; create one with: propensity keys create NAME "
                  "--scope read", highlight=False, soft_wrap=True)
        return
    table = RichTable(title=f"API keys ({store.path})")
    for col in ("name", "scope", "created (UTC)", "key starts"):
        table.add_column(col)
    for e in entries:
        table.add_row(e.name, e.scope, e.created_at, f"{e.prefix}...")
    out.print(table)


@keys_app.command("revoke")
def revoke_cmd(
    name: Annotated[str, typer.Argument(help="Name of the key to revoke.")],
    data_dir: DataDir = None,
) -> None:
    """Revoke a key; a running API refuses it from its next request on."""
    settings = load_settings(data_dir)
    store = KeyStore(settings.keys_path)
    try:
        entry = store.revoke(name)
    except KeyStoreError as exc:
        _audit(settings.audit_path, "key_revoke", name, str(exc))
        fail(str(exc))
    _audit(settings.audit_path, "key_revoke", name, None, f"scope {entry.scope}")
    out.print(f"revoked key {entry.name} ({entry.prefix}..., scope {entry.scope})",
              highlight=False, soft_wrap=True)
