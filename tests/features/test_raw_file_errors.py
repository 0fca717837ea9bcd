"""Raw files that cannot be read at all (not Parquet, cut short, damaged, a malformed CSV row,
no permission) give one line naming the file and the problem through every command that reads
them: exit 1, no traceback, nothing written."""

from __future__ import annotations

import os
import pathlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from propensity_cli import app
from tests.features.raw_fixture import valid_frames, write_raw

runner = CliRunner()
COMMANDS = [("data", "validate"), ("features", "build", "--as-of", "2024-12-01")]


def cut_short(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def damage_pages(path: Path) -> None:
    """Overwrite the column data, keep the footer: the file opens, its pages do not decode."""
    data = bytearray(path.read_bytes())
    data[4 : len(data) * 6 // 10] = b"\xff" * (len(data) * 6 // 10 - 4)
    path.write_bytes(bytes(data))


def csv_lines(path: Path, edit) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(edit(lines)))


# table, format, how the file is broken, the line the user reads (after "<file>: ")
CASES = {
    "not-parquet-at-all": ("subscriptions", "parquet",
                           lambda p: p.write_text("account_id,mrr\nA1,10\n"),
                           "not a Parquet file, or cut short (no Parquet footer at its end)"),
    "parquet-cut-short": ("usage_events", "parquet", cut_short,
                          "not a Parquet file, or cut short (no Parquet footer at its end)"),
    "parquet-damaged-pages": ("usage_events", "parquet", damage_pages, "damaged Parquet data ("),
    "a-directory": ("accounts", "parquet", lambda p: (p.unlink(), p.mkdir()),
                    "a directory, not a file"),
    "csv-broken-quote": ("accounts", "csv",
                         lambda p: csv_lines(p, lambda ls: [ls[0], '"' + ls[1], *ls[2:]]),
                         "line 2: a quoted value is never closed"),
    "csv-cut-short": ("accounts", "csv",
                      lambda p: csv_lines(p, lambda ls: [*ls[:-1], ls[-1][:12]]),
                      "line 4: 4 fields where the header has 8"),
    "csv-extra-field": ("accounts", "csv",
                        lambda p: csv_lines(p, lambda ls: [*ls, "A9,x,,smb,,,,2024-01-01,oops\n"]),
                        "line 5: 9 fields where the header has 8"),
    "csv-empty": ("accounts", "csv", lambda p: p.write_text(""),
                  "empty file (a CSV needs a header row)"),
    "csv-not-text": ("accounts", "csv", lambda p: p.write_bytes(p.read_bytes() + b"A9,\xff\xfe\n"),
                     "not UTF-8 text"),
}


@pytest.fixture()
def broken(request, tmp_path) -> tuple[Path, Path, str]:
    table, fmt, breaks, expected = CASES[request.param]
    write_raw(tmp_path / "raw", valid_frames(), fmt=fmt)
    path = tmp_path / "raw" / f"{table}.{fmt}"
    breaks(path)
    return tmp_path, path, expected


@pytest.mark.parametrize("broken", list(CASES), indirect=True)
@pytest.mark.parametrize("command", COMMANDS, ids=["validate", "build"])
def test_an_unreadable_raw_file_is_one_line_naming_it(broken, command):
    data_dir, path, expected = broken
    before = sorted(p.name for p in data_dir.iterdir())
    result = runner.invoke(app, [*command, "--data-dir", str(data_dir)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # typer.Exit, not an escaped error
    assert "Traceback" not in result.output
    assert result.output.splitlines() == [result.output.strip()]  # one line
    assert result.output.startswith(f"error: {path}: {expected}"), result.output
    assert sorted(p.name for p in data_dir.iterdir()) == before  # nothing written


def test_a_csv_without_read_permission(tmp_path, monkeypatch):
    """As root every file is readable, so the refusal the OS gives is simulated where the
    header is read (the first read of a CSV)."""
    write_raw(tmp_path / "raw", valid_frames(), fmt="csv")
    path = tmp_path / "raw" / "accounts.csv"
    real_open = pathlib.Path.open

    def refuse(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", refuse)
    result = runner.invoke(app, ["data", "validate", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output == f"error: {path}: cannot be read (permission denied)\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_parquet_file_without_read_permission(tmp_path):
    write_raw(tmp_path / "raw", valid_frames())
    path = tmp_path / "raw" / "accounts.parquet"
    path.chmod(0)
    result = runner.invoke(app, ["data", "validate", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output == f"error: {path}: cannot be read (permission denied)\n"


def test_training_on_an_unreadable_raw_file_is_the_same_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    write_raw(tmp_path / "raw", valid_frames())
    path = tmp_path / "raw" / "accounts.parquet"
    path.write_text("account_id\nA1\n")
    result = runner.invoke(app, ["train", "churn", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert [line for line in result.output.splitlines() if line.strip()] == [
        f"error: {path}: not a Parquet file, or cut short (no Parquet footer at its end)"]
