"""Snapshots written two at a time (``FeatureStore.write_each``): each yielded in order once
written and readable, never more than ``workers`` writing at once, a failure raised at its date
after the writes already started have ended, and nothing left half written."""

from __future__ import annotations

import errno
import threading
import time
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.store import FeatureStore, SnapshotWriteFailed

DAY = date(2025, 1, 1)


def snapshots(n: int, made: list[date] | None = None):
    for i in range(n):
        day = DAY + timedelta(days=i)
        if made is not None:
            made.append(day)
        yield day, pa.table({"account_id": [f"A{i}"], "x": [i]})


def test_each_snapshot_comes_in_order_once_written(tmp_path):
    store = FeatureStore(tmp_path)
    seen = []
    for day, table in store.write_each(snapshots(7), "v1", ("login",)):
        assert store.read(day).equals(table.to_pandas())  # written before it is yielded
        seen.append(day)
    assert seen == [DAY + timedelta(days=i) for i in range(7)] == store.dates()
    assert store.catalogue_version(DAY) == "v1" and store.event_types(DAY) == ("login",)


def test_at_most_workers_write_at_once(tmp_path, monkeypatch):
    store = FeatureStore(tmp_path)
    running, most, lock = [0], [0], threading.Lock()
    real = pq.write_table

    def slow(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(pq, "write_table", slow)
    assert len(list(store.write_each(snapshots(8), "v1", workers=2))) == 8
    assert most[0] == 2
    assert len(list(store.write_each(snapshots(3), "v1", workers=1))) == 3
    assert most[0] == 2 and running[0] == 0


def test_a_failed_write_is_raised_at_its_date_and_leaves_nothing_half_written(tmp_path,
                                                                              monkeypatch):
    store = FeatureStore(tmp_path)
    bad = DAY + timedelta(days=3)
    real = store.write

    def write(as_of, table, *args, **kwargs):
        if as_of == bad:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(as_of, table, *args, **kwargs)

    monkeypatch.setattr(store, "write", write)
    seen = []
    with pytest.raises(SnapshotWriteFailed) as failed:
        for day, _ in store.write_each(snapshots(8), "v1"):
            seen.append(day)
    assert failed.value.as_of == bad and failed.value.path == store.path(bad)
    assert failed.value.errno == errno.ENOSPC and failed.value.strerror == "No space left on device"
    assert seen == [DAY + timedelta(days=i) for i in range(3)]  # the dates before it
    assert bad not in store.dates()
    assert not [p for p in (tmp_path / ".versions").iterdir() if ".partial-" in p.name]
    for day in store.dates():  # whatever else was written is whole
        assert store.read(day)["x"].tolist() == [(day - DAY).days]


def test_a_caller_stopping_early_stops_the_snapshots_and_waits_for_the_writes(tmp_path):
    store = FeatureStore(tmp_path)
    made: list[date] = []
    written = store.write_each(snapshots(50, made), "v1", workers=2)
    assert next(written)[0] == DAY
    written.close()
    assert len(made) <= 4  # not the whole grid
    assert not [t for t in threading.enumerate() if t.name.startswith("store-write")]
    assert set(store.dates()) <= set(made)
