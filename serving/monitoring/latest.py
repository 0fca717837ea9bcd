"""The newest saved monitor result, read again only when the file changes (the API and the
metrics read it on every request or scrape)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

LATEST = "latest.json"


class LatestResult:
    def __init__(self, folder: Path):
        self.path = Path(folder) / LATEST
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._value: dict | None = None

    def latest(self) -> dict | None:
        """The result, or None when the monitor has not saved one (or it is unreadable)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._value = json.loads(self.path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    return None
                self._stamp = stamp
            return self._value
