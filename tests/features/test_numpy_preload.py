"""The numpy forms' sources read on a cursor while the usage reductions run
(``families_np.preload``): the same sources as a read on the connection, a source the cursor
cannot see left to that read, and every grid date still its single-date snapshot."""

from __future__ import annotations

import threading

import pyarrow as pa

from features import build, families_np
from features.sources import RawTables
from tests.features.test_grid_one_pass import assert_grid_equals_single_dates, edge_case_book
from tests.features.test_usage_grid_reductions import DATES, on_cursors


def numpy_groups(tables: RawTables) -> list:
    return [g for g in build.feature_groups() if families_np.has_form(g)
            and build._available(g, tables.present)]


def test_the_preloaded_sources_give_the_rows_of_a_read_on_the_connection():
    tables = on_cursors(edge_case_book())
    groups = numpy_groups(tables)
    cache = families_np.preload(tables.con, groups)()
    assert sorted(cache) == sorted(g.name for g in groups)  # every form, read on the cursor
    for group in groups:
        preloaded = families_np.rows(tables.con, group, DATES, cache)
        fresh = families_np.rows(tables.con, group, DATES, {})
        assert preloaded.equals(fresh), group.name
        assert isinstance(preloaded, pa.Table) and preloaded.num_rows > 0, group.name


def test_sources_the_cursor_cannot_see_are_left_to_the_connection():
    tables = RawTables.from_frames(edge_case_book())  # frames: invisible to cursors
    assert families_np.preload(tables.con, numpy_groups(tables))() == {}
    assert_grid_equals_single_dates(tables, DATES, workers=2)


def test_a_grid_on_cursors_reads_the_sources_once_while_the_reductions_run(monkeypatch):
    tables = on_cursors(edge_case_book())
    reads: list[tuple[str, str]] = []
    for name, loader in list(families_np.LOADERS.items()):
        monkeypatch.setitem(families_np.LOADERS, name,
                            lambda con, name=name, loader=loader: reads.append(
                                (name, threading.current_thread().name)) or loader(con))
    assert_grid_equals_single_dates(tables, DATES, workers=2)
    # once per grid, by the preload's thread (the single dates are SQL), never by a chunk
    assert sorted(reads) == sorted((g.name, "numpy-sources") for g in numpy_groups(tables))
