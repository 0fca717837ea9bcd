"""``propensity keys``: create, list and revoke the scoring API's keys (stored hashed)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table as RichTable

from features.cli_options import DataDir, console, fail, load_settings, out
from serving.keys import KeyStore, KeyStoreError

keys_app = typer.Typer(
    help="API keys for the scoring API: read (scores, lists) or admin (reload).",
    no_args_is_help=True,
)


class ScopeChoice(StrEnum):
    read = "read"
    admin = "admin"


def _store(data_dir) -> KeyStore:
    return KeyStore(load_settings(data_dir).keys_path)


@keys_app.command("create")
def create_cmd(
    name: Annotated[str, typer.Argument(help="Who or what uses the key, e.g. crm-sync.")],
    scope: Annotated[
        ScopeChoice, typer.Option(help="read: scores and lists; admin: also reload.")
    ] = ScopeChoice.read,
    data_dir: DataDir = None,
) -> None:
    """Create a key and print it once (only its SHA-256 digest is stored)."""
    store = _store(data_dir)
    try:
        key = store.create(name, scope.value)
    except KeyStoreError as exc:
        fail(str(exc))
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
    store = _store(data_dir)
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
    store = _store(data_dir)
    try:
        entry = store.revoke(name)
    except KeyStoreError as exc:
        fail(str(exc))
    out.print(f"revoked key {entry.name} ({entry.prefix}..., scope {entry.scope})",
              highlight=False, soft_wrap=True)
