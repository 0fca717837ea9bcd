"""The registered versions of the embedded store, read straight from its SQLite file.

`propensity models list` only reads, and importing MLflow plus opening its SQLAlchemy store
costs 3 s or more before the first row; the same rows come from three tables of the store in
milliseconds. This reads MLflow's schema (``model_versions``, ``registered_model_aliases``,
``latest_metrics``) read-only and gives up (None) on anything unexpected, so the caller falls
back to ``training.tracking.list_versions``, which goes through MLflow and is the reference: a
test requires both to give the same rows.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

#: The stage MLflow's SQL registry gives a deleted version (its rows stay in the table).
DELETED_STAGE = "Deleted_Internal"


def local_store_file(uri: str) -> Path | None:
    """The SQLite file behind a ``sqlite:///`` tracking URI, when it exists; else None."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    path = Path(uri[len(prefix):])
    return path if path.is_file() else None


def read_versions(db: Path, names: list[str]) -> list[dict] | None:
    """Rows as ``list_versions`` gives them (newest version first per name), or None when the
    file does not have the schema this expects."""
    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        return [row for name in names for row in _versions(con, name)]
    except sqlite3.Error:
        return None
    finally:
        con.close()


def _versions(con: sqlite3.Connection, name: str) -> list[dict]:
    versions = con.execute(
        "SELECT version, run_id, creation_time FROM model_versions "
        "WHERE name = ? AND current_stage != ? ORDER BY version DESC", (name, DELETED_STAGE),
    ).fetchall()
    aliases: dict[int, list[str]] = {}
    for alias, version in con.execute(
        "SELECT alias, version FROM registered_model_aliases WHERE name = ?", (name,)
    ):
        aliases.setdefault(int(version), []).append(alias)
    rows = []
    for version, run_id, created in versions:
        metrics = _run_metrics(con, run_id) if run_id else {}
        rows.append({
            "name": name, "version": int(version), "aliases": sorted(aliases.get(version, [])),
            "run_id": run_id, "roc_auc": metrics.get("test_roc_auc"),
            "ece": metrics.get("test_ece"), "created": created,
        })
    return rows


def _run_metrics(con: sqlite3.Connection, run_id: str) -> dict[str, float]:
    """A run's latest metric values, NaN where MLflow stored one."""
    return {
        key: math.nan if is_nan else float(value)
        for key, value, is_nan in con.execute(
            "SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = ?", (run_id,)
        )
    }
