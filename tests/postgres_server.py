"""A real, throwaway PostgreSQL server for the tests that pull from one, or a skip (a failure in CI)
without PostgreSQL's server binaries.

Debian's ``postgresql`` package puts ``initdb`` and ``pg_ctl`` in /usr/lib/postgresql/<N>/bin.
``initdb`` refuses to run as root, so as root the cluster belongs to ``nobody`` and the binaries
run through ``runuser``. The cluster lives in a fresh temporary folder, listens on 127.0.0.1 on a
free port (and on a unix socket in that folder), needs a password (so that a wrong one can be
tested), and is stopped and removed at the end of the test session.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "propensity"
PASSWORD = "s3cret-pw"
HOW_TO_GET = "PostgreSQL's server binaries: `apt-get install postgresql` (initdb, pg_ctl)"


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl (on PATH, else Debian's versioned folder)."""
    if found := shutil.which("initdb"):
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


def require_postgres() -> Path:
    """The binaries' folder, or skip (fail when PROPENSITY_REQUIRE_ALL_TESTS=1)."""
    folder = server_binaries()
    if folder is not None:
        return folder
    message = f"PostgreSQL tests need {HOW_TO_GET}"
    if os.environ.get("PROPENSITY_REQUIRE_ALL_TESTS") == "1":
        pytest.fail(message + " (PROPENSITY_REQUIRE_ALL_TESTS=1)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    """A running cluster: connect with ``uri(database)``."""

    bin: Path
    root: Path
    port: int

    def uri(self, database: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        command = [str(a) for a in args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "nobody", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        data = self.root / "data"
        (self.root / "pw").write_text(PASSWORD + "\n")
        self._run(self.bin / "initdb", "-D", data, "-U", USER, "--auth=scram-sha-256",
                  "--pwfile", self.root / "pw", "-E", "UTF8", "--no-locale", "--no-sync")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c shared_buffers=32MB")
        self._run(self.bin / "pg_ctl", "-D", data, "-l", self.root / "log", "-w", "-t", "60",
                  "-o", options, "start")

    def stop(self) -> None:
        try:
            self._run(self.bin / "pg_ctl", "-D", self.root / "data", "-m", "immediate", "-w",
                      "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URI."""
        import adbc_driver_postgresql.dbapi as pg

        with pg.connect(self.uri(), autocommit=True) as conn, conn.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        return self.uri(name)


def start_server() -> PostgresServer:
    binaries = require_postgres()
    root = Path(tempfile.mkdtemp(prefix="propensity-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "nobody")
    server = PostgresServer(binaries, root, free_port())
    try:
        server.start()
    except BaseException:
        log = root / "log"
        detail = log.read_text()[-2000:] if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start a PostgreSQL test server: {detail}")
    return server
