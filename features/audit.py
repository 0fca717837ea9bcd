"""The audit log of admin actions: who reloaded the service, created or revoked a key,
promoted a model, when, and whether it worked.

One JSON object a line, appended to ``<data_dir>/audit.log`` (``Settings.audit_log_path``)::

    {"time": "2026-12-02T17:40:03.512Z", "action": "key_create", "outcome": "ok",
     "key_name": "crm-sync", "actor": "cli:alice", "detail": "scope read"}

It lives in ``features`` because it is the one layer that serving (reload, keys) and training
(promote) can both import. Writers open the file in append mode, take an exclusive ``flock``
and write each line with one ``write`` before ``fsync``: concurrent commands and API workers
never interleave half lines, and a line is on disk before the action is reported done.
A record names keys, never carries a key or its digest (callers pass names only).
A log that cannot be written (full disk, no permission) is reported in the service's log at
ERROR level with the record; it never turns the action's own outcome into a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

Action = Literal["reload", "key_create", "key_revoke", "model_promote"]
ACTIONS: tuple[str, ...] = ("reload", "key_create", "key_revoke", "model_promote")


def cli_actor() -> str:
    """``cli:<os user>``: who ran a command (the CLI has no API key)."""
    with contextlib.suppress(Exception):  # getpass raises when no user name can be found
        return f"cli:{getpass.getuser()}"
    return f"cli:uid={os.getuid()}"


def record(path: Path, action: Action, ok: bool, *, key_name: str | None, actor: str,
           detail: str = "") -> dict:
    """Append one line for ``action`` to the audit log at ``path``; returns the record."""
    if action not in ACTIONS:
        raise ValueError(f"audit action {action!r}: one of {', '.join(ACTIONS)}")
    entry = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "action": action,
        "outcome": "ok" if ok else "failed",
        "key_name": key_name,
        "actor": actor,
        "detail": detail,
    }
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        _append(Path(path), line)
    except OSError as exc:
        log.error("audit log %s cannot be written (%s); the record was: %s", path,
                  exc.strerror or exc, line.decode().strip())
    return entry


def _append(path: Path, line: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(line)
        while view:  # one write almost always; a short write is finished under the lock
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock


def read(path: Path) -> list[dict]:
    """Every record of the audit log at ``path``, oldest first (none if there is no log)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]
