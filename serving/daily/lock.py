"""One run at a time per data directory: an exclusive ``flock`` on ``<data_dir>/runs/.lock``.

The holder writes its pid into the file, so a second run can say who holds it. The kernel
drops the lock when the holder's process ends, however it ends: no stale lock to clean up.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class RunLocked(RuntimeError):
    """Another run holds the data directory's lock; the message names the file and pid."""


@contextlib.contextmanager
def run_lock(path: Path) -> Iterator[None]:
    """Hold the run lock at ``path`` for the block, or raise :class:`RunLocked` at once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "unknown"
            raise RunLocked(f"another run holds {path} (pid {pid})") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
