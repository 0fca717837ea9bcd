"""The offline store: partition layout, atomic replacement, byte-identical rebuilds."""

from __future__ import annotations

import hashlib
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.build import build_snapshot
from features.sources import RawTables
from features.store import FeatureStore
from tests.features.feature_fixture import AS_OF, frames


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_layout_and_round_trip(tmp_path):
    store = FeatureStore(tmp_path / "features")
    snapshot = build_snapshot(RawTables.from_frames(frames()), AS_OF)
    path = store.write(AS_OF, snapshot, "v1")
    assert path == tmp_path / "features" / "as_of=2025-07-01"
    assert store.dates() == [AS_OF]
    assert list(store.read(AS_OF)["account_id"]) == ["A1", "A2", "A3", "A4"]
    assert store.catalogue_version(AS_OF) == "v1"
    assert sorted(p.name for p in (tmp_path / "features").iterdir()) == ["as_of=2025-07-01"]


def test_rebuild_is_byte_identical(tmp_path):
    first = FeatureStore(tmp_path / "a")
    second = FeatureStore(tmp_path / "b")
    first.write(AS_OF, build_snapshot(RawTables.from_frames(frames()), AS_OF), "v1")
    second.write(AS_OF, build_snapshot(RawTables.from_frames(frames()), AS_OF), "v1")
    assert digest(first.path(AS_OF) / "part-0.parquet") == digest(
        second.path(AS_OF) / "part-0.parquet")


def test_failed_rewrite_keeps_the_previous_snapshot(tmp_path, monkeypatch):
    store = FeatureStore(tmp_path)
    old = pa.table({"account_id": ["A1"], "as_of": [AS_OF]})
    store.write(AS_OF, old, "v1")
    before = digest(store.path(AS_OF) / "part-0.parquet")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        store.write(AS_OF, pa.table({"account_id": ["A2"], "as_of": [AS_OF]}), "v2")
    assert digest(store.path(AS_OF) / "part-0.parquet") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["as_of=2025-07-01"]


def test_dates_ignore_unfinished_folders(tmp_path):
    store = FeatureStore(tmp_path)
    store.write(date(2025, 1, 1), pa.table({"account_id": ["A1"]}), "v1")
    (tmp_path / ".as_of=2025-02-01.tmp-1").mkdir()
    (tmp_path / "as_of=2025-03-01").mkdir()  # no part file: not a snapshot
    assert store.dates() == [date(2025, 1, 1)]
