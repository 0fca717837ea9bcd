"""The offline feature store: Parquet snapshots partitioned by as_of in the data directory.

``features/as_of=YYYY-MM-DD/part-0.parquet``; a rebuild replaces a snapshot atomically (written
beside it, then swapped by rename), so a reader never sees half a snapshot.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PART = "part-0.parquet"


class FeatureStore:
    """Snapshots under one root folder (the data directory's ``features/``)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, as_of: date) -> Path:
        return self.root / f"as_of={as_of:%Y-%m-%d}"

    def write(self, as_of: date, table: pa.Table, catalogue_version: str) -> Path:
        """Write (or replace) the snapshot of ``as_of`` atomically."""
        metadata = dict(table.schema.metadata or {})
        metadata[b"propensity.catalogue_version"] = catalogue_version.encode()
        metadata.pop(b"pandas", None)
        stamped = table.replace_schema_metadata(metadata)
        return replace_dir_atomic(self.path(as_of),
                                  lambda staging: pq.write_table(stamped, staging / PART))

    def dates(self) -> list[date]:
        """as_of dates of the stored snapshots, oldest first."""
        if not self.root.is_dir():
            return []
        found = [
            date.fromisoformat(p.name.removeprefix("as_of="))
            for p in self.root.iterdir()
            if p.is_dir() and p.name.startswith("as_of=") and (p / PART).exists()
        ]
        return sorted(found)

    def read(self, as_of: date) -> pd.DataFrame:
        path = self.path(as_of) / PART
        if not path.exists():
            raise FileNotFoundError(f"no feature snapshot for as_of {as_of} in {self.root}")
        return pq.read_table(path).to_pandas()

    def catalogue_version(self, as_of: date) -> str | None:
        meta = pq.read_schema(self.path(as_of) / PART).metadata or {}
        value = meta.get(b"propensity.catalogue_version")
        return value.decode() if value else None


def replace_dir_atomic(final: Path, write: Callable[[Path], None]) -> Path:
    """Fill a folder beside ``final`` with ``write(staging)``, then swap it in by rename:
    a reader sees the old folder or the new one, never half of one; a failed write leaves
    the old folder and no staging behind."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.tmp-{os.getpid()}"
    retired = final.parent / f".{final.name}.old-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        write(staging)
        if final.exists():
            final.rename(retired)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
    return final


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> Path:
    """Write a frame to ``path`` via a temporary file and a rename: never a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        frame.to_parquet(staging, index=False)
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    return path
