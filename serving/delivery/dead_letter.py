"""The webhooks' dead letter: batches that still failed after their retries, kept for the
next run (JSON lines, one batch per line, its exact body and idempotency key).

A failed batch is appended with one ``write`` on a file opened for appending, so a line is whole
or absent; the file is rewritten (temporary file, then a rename) only to drop what a later run
delivered. Bodies hold customer data: the file is created readable by its owner only.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


class DeadLetter:
    """The dead-letter file of a data directory's delivery."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def entries(self) -> list[dict]:
        """The waiting batches, oldest first (a torn line from a crash is skipped, named)."""
        if not self.path.exists():
            return []
        found = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("%s line %d is not a whole JSON line (a crash mid-write?): skipped",
                            self.path, number)
        return found

    def append(self, entry: dict) -> None:
        """Add one batch as one line, with one write."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            written = os.write(fd, data)
            if written != len(data):  # a full disk: leave no torn line behind
                os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_END) - written)
                raise OSError(f"{self.path}: only {written} of {len(data)} bytes written")
            os.fsync(fd)
        finally:
            os.close(fd)

    def replace(self, entries: list[dict]) -> None:
        """Keep only ``entries`` (none: the file goes), in one rename."""
        if not entries:
            self.path.unlink(missing_ok=True)
            return
        staging = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        try:
            fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.writelines(json.dumps(e, separators=(",", ":")) + "\n" for e in entries)
                out.flush()
                os.fsync(out.fileno())
            os.replace(staging, self.path)
        finally:
            staging.unlink(missing_ok=True)
