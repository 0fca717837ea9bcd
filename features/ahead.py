"""Work started on a cursor of a DuckDB connection, in a thread of its own, while the caller
goes on.

A grid reads some sources ahead, while the usage reductions keep both cores busy, so that the
stretch after them, where one core would work and the other wait, gets shorter
(``families_np.preload``, ``grid_assembly.accounts_ahead``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import duckdb

T = TypeVar("T")


def on_cursor(con: duckdb.DuckDBPyConnection, work: Callable[[duckdb.DuckDBPyConnection], T],
              name: str) -> Callable[[], T | None]:
    """Start ``work`` on a cursor of ``con`` in a thread named ``name``; the returned function
    waits for it and gives its result, or None where it failed: frames registered on ``con``,
    which its cursors do not see, or any error, which the caller's own run of the work on
    ``con`` then raises where it is real."""
    found: list[T] = []

    def run() -> None:
        cursor = con.cursor()
        try:
            found.append(work(cursor))
        except Exception:  # noqa: BLE001 - redone by the caller, who sees the error then
            pass
        finally:
            cursor.close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()

    def wait() -> T | None:
        thread.join()
        return found[0] if found else None

    return wait
