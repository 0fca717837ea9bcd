"""The offline store: partition layout, atomic replacement, byte-identical rebuilds."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import threading
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


def published(root) -> list[str]:
    """The version folders (complete or partial) behind the as_of= links."""
    return sorted(p.name for p in (root / ".versions").iterdir() if p.name != ".lock")


def test_layout_and_round_trip(tmp_path):
    store = FeatureStore(tmp_path / "features")
    snapshot = build_snapshot(RawTables.from_frames(frames()), AS_OF)
    path = store.write(AS_OF, snapshot, "v1")
    assert path == tmp_path / "features" / "as_of=2025-07-01"
    assert store.dates() == [AS_OF]
    assert list(store.read(AS_OF)["account_id"]) == ["A1", "A2", "A3", "A4"]
    assert store.catalogue_version(AS_OF) == "v1"
    root = tmp_path / "features"
    assert sorted(p.name for p in root.iterdir()) == [".versions", "as_of=2025-07-01"]
    assert path.is_symlink()
    [version] = published(root)
    assert os.readlink(path) == f".versions/{version}"
    assert version.startswith("as_of=2025-07-01@")


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
    assert store.catalogue_version(AS_OF) == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".versions", "as_of=2025-07-01"]
    assert len(published(tmp_path)) == 1  # the old version, and no partial folder


def test_dates_ignore_unfinished_folders(tmp_path):
    store = FeatureStore(tmp_path)
    store.write(date(2025, 1, 1), pa.table({"account_id": ["A1"]}), "v1")
    (tmp_path / ".as_of=2025-02-01.tmp-1").mkdir()
    (tmp_path / "as_of=2025-03-01").mkdir()  # no part file: not a snapshot
    assert store.dates() == [date(2025, 1, 1)]


def generation(n: int) -> pa.Table:
    """Publication number n: its rows all say n, and there are 1 + n % 3 of them."""
    return pa.table({"account_id": [f"A{i}" for i in range(1 + n % 3)],
                     "publication": [n] * (1 + n % 3)})


def test_readers_never_see_a_missing_partial_or_older_snapshot(tmp_path):
    """A reader hammering the store while a writer republishes the newest date 150 times:
    every read finds both dates, a whole snapshot, and never one older than a read before."""
    store = FeatureStore(tmp_path)
    older = date(2025, 6, 1)
    store.write(older, generation(0), "v0")
    store.write(AS_OF, generation(0), "v0")
    stop, failures, seen = threading.Event(), [], []

    def read() -> None:
        last = 0
        while not stop.is_set():
            try:
                assert store.dates() == [older, AS_OF]
                frame = store.read(AS_OF)
                [n] = set(frame["publication"])
                assert len(frame) == 1 + n % 3, "a partial snapshot"
                assert n >= last, f"publication {n} after {last}"
                last = n
                seen.append(n)
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                failures.append(f"{type(exc).__name__}: {exc}")
                return

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        for n in range(1, 151):
            store.write(AS_OF, generation(n), f"v{n}")
    finally:
        stop.set()
        for t in readers:
            t.join(timeout=30)
    assert failures == []
    assert len(seen) > 100 and len(set(seen)) > 10  # the readers did overlap the writes
    assert store.read(AS_OF)["publication"].tolist() == [150]
    assert store.catalogue_version(AS_OF) == "v150"
    versions = published(tmp_path)  # the replaced versions are gone, one per date is left
    assert [v.split("@")[0] for v in versions] == ["as_of=2025-06-01", "as_of=2025-07-01"]


def test_a_writer_failing_half_way_leaves_the_previous_version_and_no_partial(tmp_path):
    from features.store import replace_dir_atomic

    final = tmp_path / "as_of=2025-07-01"
    replace_dir_atomic(final, lambda d: (d / "part-0.parquet").write_text("old"))

    def half(folder):
        (folder / "part-0.parquet").write_text("half of the new")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        replace_dir_atomic(final, half)
    assert (final / "part-0.parquet").read_text() == "old"
    assert len(published(tmp_path)) == 1


def test_a_partial_folder_of_a_killed_writer_is_cleaned_at_the_next_publication(tmp_path):
    from features.store import replace_dir_atomic

    final = tmp_path / "as_of=2025-07-01"
    replace_dir_atomic(final, lambda d: (d / "part-0.parquet").write_text("v1"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stray = tmp_path / ".versions" / f"as_of=2025-07-01@1-{dead}.partial-{dead}"
    stray.mkdir()  # what kill -9 in the middle of a write leaves
    busy = tmp_path / ".versions" / f"as_of=2025-07-01@2-{os.getpid()}.partial-{os.getpid()}"
    busy.mkdir()  # a live writer's folder stays
    replace_dir_atomic(final, lambda d: (d / "part-0.parquet").write_text("v2"))
    assert (final / "part-0.parquet").read_text() == "v2"
    assert not stray.exists() and busy.exists()
    assert len(published(tmp_path)) == 2


def test_a_folder_of_the_old_layout_is_replaced_by_a_link(tmp_path):
    store = FeatureStore(tmp_path)
    old = store.path(AS_OF)
    old.mkdir()
    pq.write_table(pa.table({"account_id": ["A1"]}), old / "part-0.parquet")
    store.write(AS_OF, pa.table({"account_id": ["A2"]}), "v2")
    assert old.is_symlink()
    assert store.read(AS_OF)["account_id"].tolist() == ["A2"]


def test_read_stamped_gives_the_frame_and_its_catalogue_version(tmp_path):
    store = FeatureStore(tmp_path)
    store.write(AS_OF, pa.table({"account_id": ["A1", "A2"]}), "abc123")
    frame, version = store.read_stamped(AS_OF)
    assert (frame["account_id"].tolist(), version) == (["A1", "A2"], "abc123")
    with pytest.raises(FileNotFoundError, match="no feature snapshot for as_of 2025-06-01"):
        store.read_stamped(date(2025, 6, 1))
