"""The score history: every scored account of every daily run, one partition per as_of.

Layout (the batch-score layout, see :mod:`serving.batch`)::

    <data_dir>/history/as_of=YYYY-MM-DD -> .versions/as_of=YYYY-MM-DD@<version>
    <data_dir>/history/.versions/as_of=YYYY-MM-DD@<version>/part-0.parquet   (OUTPUT_SCHEMA)
    <data_dir>/history/.versions/as_of=YYYY-MM-DD@<version>/_scoring.json    (models used)

A partition is the batch file of that run, published whole by one rename, so a reader never
sees half a run. ``_scoring.json`` names each task's model URI and version (and, when the run
recorded it, the catalogue version). Queries across runs go through DuckDB over the published
files; one account's history reads a few rows of every partition, not whole files.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from features.store import PART, read_published

HISTORY = "history"
NOTE = "_scoring.json"


def history_dir(data_dir: Path) -> Path:
    """Where the score history of a data directory lives."""
    return Path(data_dir) / HISTORY


class ScoreHistory:
    """The published history partitions under one root (``<data_dir>/history``)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, as_of: date) -> Path:
        return self.root / f"as_of={as_of:%Y-%m-%d}"

    def dates(self) -> list[date]:
        """as_of dates of the published runs, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(
            date.fromisoformat(p.name.removeprefix("as_of="))
            for p in self.root.iterdir()
            if p.name.startswith("as_of=") and (p / PART).exists()
        )

    def note(self, as_of: date) -> dict:
        """The run's ``_scoring.json`` (models used); {} when the partition has none."""
        found = read_published(self.path(as_of), _read_note)
        return found or {}

    def model_versions(self, as_of: date) -> dict[str, str | None]:
        """Task -> registered version of the model that scored the run of ``as_of``."""
        return {task: (None if m.get("version") is None else str(m["version"]))
                for task, m in self.note(as_of).get("models", {}).items()}

    def read(self, as_of: date, columns: list[str] | None = None) -> pd.DataFrame:
        """One run's scored accounts (KeyError-free: FileNotFoundError when not published)."""
        table = read_published(self.path(as_of),
                               lambda folder: pq.read_table(folder / PART, columns=columns))
        if table is None:
            raise FileNotFoundError(f"no scores for as_of={as_of} in {self.root}")
        return table.to_pandas()

    def account(self, account_id: str, start: date | None = None,
                end: date | None = None) -> pd.DataFrame:
        """Every published run's row for one account within ``[start, end]``, oldest first,
        with a ``model_versions`` column (task -> version) from each run's note."""
        import duckdb

        dates = [d for d in self.dates()
                 if (start is None or d >= start) and (end is None or d <= end)]
        if not dates:
            return pd.DataFrame()
        files = [str((self.path(d) / PART).resolve()) for d in dates]
        with duckdb.connect() as con:
            rows = con.execute(
                "SELECT * FROM read_parquet($files, union_by_name = true, "
                "hive_partitioning = false) WHERE account_id = $id ORDER BY as_of",
                {"files": files, "id": str(account_id)},
            ).df()
        if rows.empty:
            return rows
        versions = {d: self.model_versions(d) for d in dates}
        rows["model_versions"] = [versions.get(pd.Timestamp(d).date(), {}) for d in rows["as_of"]]
        return rows


def _read_note(folder: Path) -> dict:
    path = folder / NOTE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
