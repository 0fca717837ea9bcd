"""The run manifest: per as_of, what each step of the last successful run read and wrote.

``<data_dir>/runs/as_of=YYYY-MM-DD.json``::

    {"as_of": "...", "finished_at": "...", "engine": "duckdb",
     "steps": {"validate": {"inputs": {"raw": "<fingerprint>"}, "outputs": {...}}, ...}}

A step is current when its recorded inputs equal today's (the raw export's fingerprint, the
snapshot's version folder, the champions' versions) and the output it recorded is still the
one published. The file is written once a run has finished, by a rename: a run that fails
leaves the previous manifest (or none), so its steps are redone next time.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import date
from pathlib import Path

RUNS = "runs"
LOCK = ".lock"


def runs_dir(data_dir: Path) -> Path:
    return Path(data_dir) / RUNS


def lock_path(data_dir: Path) -> Path:
    return runs_dir(data_dir) / LOCK


def manifest_path(data_dir: Path, as_of: date) -> Path:
    return runs_dir(data_dir) / f"as_of={as_of:%Y-%m-%d}.json"


def read_manifest(data_dir: Path, as_of: date) -> dict:
    """The manifest of the last finished run of ``as_of``; {} when there is none."""
    path = manifest_path(data_dir, as_of)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def write_manifest(data_dir: Path, as_of: date, manifest: dict) -> Path:
    """Write the manifest whole (a temporary file, then one rename)."""
    path = manifest_path(data_dir, as_of)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        staging.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n",
                           encoding="utf-8")
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    return path


def folder_fingerprint(folder: Path) -> str | None:
    """Identity of a folder's contents without reading them: where it resolves to, and each
    file's name, size and modification time. None when the folder does not exist."""
    real = Path(os.path.realpath(folder))
    if not real.is_dir():
        return None
    digest = hashlib.sha256(str(real).encode())
    for path in sorted(real.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"\0{path.relative_to(real)}\0{stat.st_size}\0{stat.st_mtime_ns}"
                          .encode())
    return digest.hexdigest()[:16]


def published_version(link: Path) -> str | None:
    """The version a published partition link points at (its ``.versions/`` folder name,
    unique per write), with the folder's modification time for plain folders (Spark's);
    None when nothing is published."""
    real = Path(os.path.realpath(link))
    if not real.is_dir():
        return None
    return f"{real.name}:{real.stat().st_mtime_ns}"


def text_fingerprint(value: str) -> str:
    """A short hash of a value that should not be stored as such (a source URI's password)."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]
