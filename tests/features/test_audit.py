"""The audit log: one well-formed JSON line per admin action, appended, never interleaved."""

from __future__ import annotations

import json
import logging
import multiprocessing
import re
from pathlib import Path

import pytest

from features import audit

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_a_record_is_one_json_line_with_every_field(tmp_path):
    path = tmp_path / "logs" / "audit.log"
    audit.record(path, "reload", True, key_name="ops", actor="api", detail="as_of 2025-05-01")
    audit.record(path, "model_promote", False, key_name=None, actor="cli:alice",
                 detail="no version 9")
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert TIME.fullmatch(first.pop("time")) and TIME.fullmatch(second.pop("time"))
    assert first == {"action": "reload", "outcome": "ok", "key_name": "ops", "actor": "api",
                     "detail": "as_of 2025-05-01"}
    assert second == {"action": "model_promote", "outcome": "failed", "key_name": None,
                      "actor": "cli:alice", "detail": "no version 9"}
    assert audit.read(path) == [json.loads(line) for line in lines]
    assert path.stat().st_mode & 0o777 == 0o600


def test_records_are_appended_to_an_existing_log(tmp_path):
    path = tmp_path / "audit.log"
    path.write_text('{"earlier": true}\n')
    audit.record(path, "key_revoke", True, key_name="a", actor="cli:x")
    assert path.read_text().startswith('{"earlier": true}\n{"time": ')


def test_an_unknown_action_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError, match="audit action 'delete'"):
        audit.record(tmp_path / "audit.log", "delete", True, key_name=None, actor="api")


def test_a_log_that_cannot_be_written_is_reported_not_raised(tmp_path, caplog):
    blocked = tmp_path / "audit.log"
    blocked.mkdir()  # a directory where the file should be: the open fails
    with caplog.at_level(logging.ERROR, logger="features.audit"):
        entry = audit.record(blocked, "reload", True, key_name="ops", actor="api")
    assert entry["outcome"] == "ok"
    assert f"audit log {blocked} cannot be written" in caplog.text
    assert '"action": "reload"' in caplog.text


def _write_many(path: str, writer: int, count: int) -> None:
    for i in range(count):
        audit.record(Path(path), "reload", True, key_name=f"w{writer}", actor="api",
                     detail=f"{i:04d} " + "x" * 3000)  # long lines: more than one pipe buffer


def test_concurrent_writers_never_interleave_lines(tmp_path):
    path = tmp_path / "audit.log"
    writers, count = 4, 50
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_write_many, args=(str(path), w, count))
                 for w in range(writers)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
        assert p.exitcode == 0
    records = audit.read(path)  # json.loads of every line: a torn line would fail here
    assert len(records) == writers * count
    for w in range(writers):
        mine = [r["detail"][:4] for r in records if r["key_name"] == f"w{w}"]
        assert mine == [f"{i:04d}" for i in range(count)]  # each writer's order kept
