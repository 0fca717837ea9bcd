"""The score history: every scored account of every daily run, one partition per as_of.

Layout (the batch-score layout, see :mod:`serving.batch`)::

    <data_dir>/history/as_of=YYYY-MM-DD -> .versions/as_of=YYYY-MM-DD@<version>
    <data_dir>/history/.versions/as_of=YYYY-MM-DD@<version>/part-0.parquet   (OUTPUT_SCHEMA)
    <data_dir>/history/.versions/as_of=YYYY-MM-DD@<version>/_scoring.json    (models used)

A partition is the batch file of that run, published whole by one rename, so a reader never
sees half a run. ``_scoring.json`` names each task's model URI and version (and, when the run
recorded it, the catalogue version). Queries across runs go through DuckDB over the published
files; one account's history reads a few rows of every partition, not whole files. A run on
Spark writes a plain ``as_of=`` folder of ``part-*.parquet`` files instead of the link; both
read the same.

Retention (``history_keep_days``) removes whole partitions (:meth:`ScoreHistory.prune`): the
link first, so a reader never finds a partition without its files, then the version folder.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from features.store import read_published

HISTORY = "history"
NOTE = "_scoring.json"


def history_dir(data_dir: Path) -> Path:
    """Where the score history of a data directory lives."""
    return Path(data_dir) / HISTORY


class ScoreHistory:
    """The published history partitions under one root (``<data_dir>/history``).

    One instance serves many reads (the API keeps one): it holds a DuckDB connection whose
    Parquet metadata cache spares re-reading every file's footer per request, and the notes of
    the versions it has read (a published version folder never changes)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._con = None
        self._lock = threading.Lock()
        self._notes: dict[str, dict] = {}

    def path(self, as_of: date) -> Path:
        return self.root / f"as_of={as_of:%Y-%m-%d}"

    def dates(self) -> list[date]:
        """as_of dates of the published runs, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(
            date.fromisoformat(p.name.removeprefix("as_of="))
            for p in self.root.iterdir()
            if p.name.startswith("as_of=") and parts(p)
        )

    def note(self, as_of: date) -> dict:
        """The run's ``_scoring.json`` (models used); {} when the partition has none."""
        found = read_published(self.path(as_of), _read_note)
        return found or {}

    def model_versions(self, as_of: date) -> dict[str, str | None]:
        """Task -> registered version of the model that scored the run of ``as_of``."""
        return _versions(self.note(as_of))

    def catalogue_version(self, as_of: date) -> str | None:
        """The feature catalogue version of the snapshot the run of ``as_of`` scored."""
        return self.note(as_of).get("catalogue_version")

    def read(self, as_of: date, columns: list[str] | None = None) -> pd.DataFrame:
        """One run's scored accounts (KeyError-free: FileNotFoundError when not published)."""
        table = read_published(self.path(as_of), lambda folder: pq.ParquetDataset(
            parts(folder), partitioning=None).read(columns=columns))
        if table is None:
            raise FileNotFoundError(f"no scores for as_of={as_of} in {self.root}")
        return table.to_pandas()

    def account(self, account_id: str, start: date | None = None,
                end: date | None = None) -> pd.DataFrame:
        """Every published run's row for one account within ``[start, end]``, oldest first,
        with a ``model_versions`` column (task -> version) from each run's note."""
        dates = [d for d in self.dates()
                 if (start is None or d >= start) and (end is None or d <= end)]
        if not dates:
            return pd.DataFrame()
        folders = {d: Path(os.path.realpath(self.path(d))) for d in dates}
        files = [str(p) for d in dates for p in parts(folders[d])]
        with self._cursor() as con:
            rows = con.execute(
                "SELECT * FROM read_parquet($files, union_by_name = true, "
                "hive_partitioning = false) WHERE account_id = $id ORDER BY as_of",
                {"files": files, "id": str(account_id)},
            ).df()
        if rows.empty:
            return rows
        notes = {d: self._version_note(folders[d])
                 for d in {pd.Timestamp(d).date() for d in rows["as_of"]}}
        days = [pd.Timestamp(d).date() for d in rows["as_of"]]
        rows["model_versions"] = [_versions(notes[d]) for d in days]
        rows["catalogue_version"] = [notes[d].get("catalogue_version") for d in days]
        return rows

    def _cursor(self):
        """A cursor of the instance's connection (one per call: safe across threads)."""
        import duckdb

        with self._lock:
            if self._con is None:
                self._con = duckdb.connect()
                self._con.execute("SET parquet_metadata_cache = true")
            return self._con.cursor()

    def _version_note(self, folder: Path) -> dict:
        key = str(folder)
        if key not in self._notes:
            self._notes[key] = _read_note(folder)
        return self._notes[key]

    def prune(self, before: date) -> list[date]:
        """Remove the partitions of runs older than ``before`` (retention); returns their
        dates. Each goes link first (readers stop seeing it), then its files."""
        removed = []
        for day in self.dates():
            if day >= before:
                break
            link = self.path(day)
            target = Path(os.path.realpath(link))
            if link.is_symlink():
                link.unlink()
                shutil.rmtree(target, ignore_errors=True)
            else:  # a Spark run's plain folder
                retired = link.with_name(f".{link.name}.retired-{os.getpid()}")
                link.rename(retired)
                shutil.rmtree(retired, ignore_errors=True)
            removed.append(day)
        return removed


def parts(folder: Path) -> list[Path]:
    """The Parquet files of one partition: ``part-0.parquet`` (DuckDB engine) or Spark's
    ``part-*.parquet``; [] when nothing is published there."""
    if not folder.is_dir():
        return []
    return sorted(folder.glob("part-*.parquet"))


def _versions(note: dict) -> dict[str, str | None]:
    return {task: (None if m.get("version") is None else str(m["version"]))
            for task, m in note.get("models", {}).items()}


def _read_note(folder: Path) -> dict:
    path = folder / NOTE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
