"""API keys of the scoring API: a small JSON file holding only a digest of each key.

Why SHA-256 and not bcrypt/scrypt/argon2: a slow KDF exists to make guessing *low-entropy
passwords* expensive. These keys are 256 bits from ``secrets``; nobody can enumerate that space
whatever the hash costs, so a slow hash would add nothing but milliseconds to every request.
A plain SHA-256 digest makes the file useless to whoever reads it (the digest does not let
them call the API) and keeps a lookup in microseconds.

The file is rewritten whole (temp file + ``os.replace``, mode 0600), so readers - the running
API re-reads it when it changes - never see half a file, and ``keys revoke`` takes effect on
the next request without a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

Scope = Literal["read", "admin"]
SCOPES: tuple[str, ...] = ("read", "admin")
KEY_PREFIX = "prop_"
SHOWN_CHARS = 6  # random characters kept in the listing prefix: identifies, never authenticates
FORMAT_VERSION = 1
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_KEY_LENGTH = 256  # longer strings cannot be one of our keys; do not hash megabytes


class KeyStoreError(Exception):
    """Bad input to the key store, or a keys file that cannot be used (message names it)."""


@dataclass(frozen=True)
class KeyEntry:
    """What may be shown about a key: never the key, and never its digest."""

    name: str
    scope: str
    created_at: str  # ISO 8601, UTC
    prefix: str  # e.g. "prop_AbC12x": enough to tell keys apart in a listing

    def allows(self, scope: str) -> bool:
        """``admin`` implies ``read``."""
        return self.scope == "admin" or self.scope == scope


@dataclass(frozen=True)
class _Record:
    entry: KeyEntry
    digest: bytes = field(repr=False)


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def new_key() -> str:
    """``prop_`` + 43 URL-safe characters (256 random bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyStore:
    """The keys file at ``path``: create, list, revoke and look up keys.

    Reads are cached and redone only when the file changes (its mtime, size or inode: every
    write replaces the file, so the inode changes even within one mtime tick).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._signature: tuple[int, int, int] | None = None
        self._records: list[_Record] = []

    # -- reading ---------------------------------------------------------------------------
    def _current(self) -> list[_Record]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._signature, self._records = None, []
            return []
        except OSError as exc:
            raise KeyStoreError(f"{self.path}: cannot read the API keys file ({exc})") from exc
        signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        if signature != self._signature:
            self._records = self._read()
            self._signature = signature
        return self._records

    def _read(self) -> list[_Record]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyStoreError(f"{self.path}: cannot read the API keys file ({exc})") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise KeyStoreError(
                f"{self.path}: the API keys file is not valid JSON (line {exc.lineno}: {exc.msg})"
            ) from exc
        return _parse(data, self.path)

    def list(self) -> list[KeyEntry]:
        """All keys, oldest first."""
        return [r.entry for r in self._current()]

    def lookup(self, key: str) -> KeyEntry | None:
        """The entry whose digest matches ``key``, or None.

        Every stored digest is compared with ``hmac.compare_digest`` and the loop never stops
        early, so the time taken does not depend on which key (if any) matched.
        """
        records = self._current()
        if not key or len(key) > MAX_KEY_LENGTH:
            return None
        wanted = digest(key)
        found = None
        for record in records:
            if hmac.compare_digest(record.digest, wanted):
                found = record.entry
        return found

    # -- writing ---------------------------------------------------------------------------
    def create(self, name: str, scope: str) -> str:
        """Store a new key named ``name``; returns the plaintext key (the only time it exists)."""
        if not NAME_PATTERN.match(name):
            raise KeyStoreError(
                f"key name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if scope not in SCOPES:
            raise KeyStoreError(f"scope {scope!r}: choose one of {', '.join(SCOPES)}")
        with self._locked():
            records = self._read()
            if any(r.entry.name == name for r in records):
                raise KeyStoreError(
                    f"{self.path}: a key named {name!r} already exists "
                    "(revoke it first, or choose another name)"
                )
            key = new_key()
            created = datetime.now(UTC).replace(microsecond=0).isoformat()
            entry = KeyEntry(name, scope, created, key[: len(KEY_PREFIX) + SHOWN_CHARS])
            self._write([*records, _Record(entry, digest(key))])
        log.info("created API key %s (scope %s) in %s", name, scope, self.path)
        return key

    def revoke(self, name: str) -> KeyEntry:
        """Remove the key named ``name``; returns what it was."""
        with self._locked():
            records = self._read()
            kept = [r for r in records if r.entry.name != name]
            if len(kept) == len(records):
                known = ", ".join(r.entry.name for r in records) or "none"
                raise KeyStoreError(f"{self.path}: no key named {name!r} (keys: {known})")
            self._write(kept)
        log.info("revoked API key %s in %s", name, self.path)
        return next(r.entry for r in records if r.entry.name == name)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise read-modify-write between concurrent ``keys`` commands."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise KeyStoreError(f"{lock_path}: cannot create the lock of the API keys file "
                                f"({exc.strerror or exc}); nothing was changed") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _write(self, records: list[_Record]) -> None:
        """Replace the file with ``records``; a failed write (a full disk) leaves it as it was
        and is a KeyStoreError naming the file and the reason."""
        data = {
            "version": FORMAT_VERSION,
            "hash": "sha256",
            "keys": [{**asdict(r.entry), "sha256": r.digest.hex()} for r in records],
        }
        try:
            self._replace(data)
        except OSError as exc:
            raise KeyStoreError(f"{self.path}: cannot write the API keys file "
                                f"({exc.strerror or exc}); it is unchanged") from exc

    def _replace(self, data: dict) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def _parse(data: object, path: Path) -> list[_Record]:
    """Validate the file's content; any problem is an error naming the file and the entry."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise KeyStoreError(f"{path}: not an API keys file (expected an object with 'keys': [...])")
    if data.get("version") != FORMAT_VERSION or data.get("hash") != "sha256":
        raise KeyStoreError(
            f"{path}: unsupported API keys file (version {data.get('version')!r}, "
            f"hash {data.get('hash')!r}; expected version {FORMAT_VERSION}, sha256)"
        )
    records, names = [], set()
    for i, item in enumerate(data["keys"]):
        where = f"{path}: keys[{i}]"
        if not isinstance(item, dict):
            raise KeyStoreError(f"{where}: expected an object")
        missing = [k for k in ("name", "scope", "created_at", "prefix", "sha256") if k not in item]
        if missing:
            raise KeyStoreError(f"{where}: missing field(s) {', '.join(missing)}")
        if item["scope"] not in SCOPES:
            raise KeyStoreError(f"{where}: scope {item['scope']!r} is not one of {SCOPES}")
        if not re.fullmatch(r"[0-9a-f]{64}", str(item["sha256"])):
            raise KeyStoreError(f"{where}: sha256 is not 64 lowercase hex digits")
        if item["name"] in names:
            raise KeyStoreError(f"{where}: duplicate key name {item['name']!r}")
        names.add(item["name"])
        entry = KeyEntry(str(item["name"]), item["scope"], str(item["created_at"]),
                         str(item["prefix"]))
        records.append(_Record(entry, bytes.fromhex(item["sha256"])))
    return records
