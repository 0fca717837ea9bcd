"""Denser usage (simulator.signals.UsageDensity, `data generate --usage-activity/--usage-sessions`)
scales the usage rows as documented and leaves the default book and every other table as they
were."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from propensity_cli import app
from simulator.generator import generate
from simulator.signals import UsageDensity

START = date(2024, 1, 1)

#: Content of the default book of 60 accounts x 4 months, seed 5, as generated before the
#: density option existed (sha256 of each column's values, first 16 hex digits).
DEFAULT_BOOK = {
    "accounts": "c6df88dda8bbf448",
    "activities": "fcdd0721fdb486f0",
    "contacts": "f3572e782b9fbf1e",
    "health_scores": "9bfd9dd840eb851a",
    "nps_responses": "401bcf3c4d83f172",
    "subscriptions": "0932bd91ccaea484",
    "support_tickets": "67cc1039433ff585",
    "usage_events": "2f7cbf43087df6c9",
}


def content(path: Path) -> str:
    """A digest of a Parquet file's values (not its bytes: those carry the writer's version)."""
    table = pq.read_table(path)
    digest = hashlib.sha256()
    for name in table.column_names:
        digest.update(name.encode())
        for value in table.column(name).to_pylist():
            digest.update(repr(value).encode())
    return digest.hexdigest()[:16]


def book(root: Path, accounts: int, months: int, seed: int,
         usage: UsageDensity | None = None) -> Path:
    generate(accounts, months, seed, START, root / "raw", root / "truth", usage)
    return root / "raw"


def usage_counts(raw: Path) -> dict[str, float]:
    con = duckdb.connect()
    rows, user_days, triples, off_midnight, outside_office = con.execute(f"""
        SELECT count(*), count(DISTINCT (user_id, CAST(event_time AS DATE))),
          count(DISTINCT (user_id, CAST(event_time AS DATE), event_type)),
          count(*) FILTER (WHERE CAST(event_time AS TIME) <> TIME '00:00:00'),
          count(*) FILTER (WHERE CAST(event_time AS TIME) <> TIME '00:00:00'
                           AND NOT hour(event_time) BETWEEN 8 AND 18)
        FROM read_parquet('{raw / "usage_events.parquet"}')""").fetchone()
    return {"rows": rows, "user_days": user_days, "triples": triples,
            "off_midnight": off_midnight, "outside_office": outside_office}


def test_the_default_book_is_the_one_generated_before_the_option(tmp_path):
    raw = book(tmp_path, 60, 4, 5)
    assert {p.stem: content(p) for p in sorted(raw.glob("*.parquet"))} == DEFAULT_BOOK
    assert "usage_density" not in json.loads((raw / "_manifest.json").read_text())


@pytest.fixture(scope="module")
def books(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("density")
    return {
        "default": book(root / "default", 200, 4, 9),
        "sessions": book(root / "sessions", 200, 4, 9, UsageDensity(sessions=3.0)),
        "activity": book(root / "activity", 200, 4, 9, UsageDensity(activity=2.0)),
    }


@pytest.mark.parametrize("kind", ["sessions", "activity"])
def test_only_the_usage_table_changes(books, kind):
    default, dense = books["default"], books[kind]
    for path in sorted(default.iterdir()):
        same = path.read_bytes() == (dense / path.name).read_bytes()
        assert same == (path.name not in ("usage_events.parquet", "_manifest.json")), path.name
    truth = [p.parent / "truth" / "account_month_truth.parquet" for p in (default, dense)]
    assert truth[0].read_bytes() == truth[1].read_bytes()


def test_sessions_multiply_the_rows_of_each_user_day_and_type(books):
    default, dense = usage_counts(books["default"]), usage_counts(books["sessions"])
    # Each (user, day, type) is 1 + Poisson(2) sessions: 3 rows on average (over ~20,000)
    assert dense["rows"] / dense["triples"] == pytest.approx(3.0, rel=0.04)
    assert default["rows"] == default["triples"]  # the default: one row each
    # the user-days are drawn as often as in the default book (another random stream)
    assert dense["user_days"] / default["user_days"] == pytest.approx(1.0, rel=0.1)
    assert dense["rows"] / default["rows"] == pytest.approx(3.0, rel=0.1)
    # sessions are stamped in office hours; the default book at midnight
    assert dense["off_midnight"] == dense["rows"] and dense["outside_office"] == 0
    assert default["off_midnight"] == 0


def test_activity_multiplies_the_active_user_days(books):
    default, dense = usage_counts(books["default"]), usage_counts(books["activity"])
    # x2 a daily chance of at most ~0.3: the cap at 1 almost never binds
    assert dense["user_days"] / default["user_days"] == pytest.approx(2.0, rel=0.1)
    assert dense["rows"] == dense["triples"]
    manifest = json.loads((books["activity"] / "_manifest.json").read_text())
    assert manifest["usage_density"] == {"activity": 2.0, "sessions": 1.0}


def test_dense_usage_keeps_one_time_sorted_row_group_per_month(books):
    meta = pq.ParquetFile(books["sessions"] / "usage_events.parquet").metadata
    assert meta.num_row_groups == 4
    times = pq.read_table(books["sessions"] / "usage_events.parquet",
                          columns=["event_time"]).column(0).to_numpy()
    assert (times[1:] >= times[:-1]).all()


@pytest.mark.parametrize("usage, message", [
    (dict(activity=0.0), "usage activity must be a positive number, got 0.0"),
    (dict(activity=float("inf")), "usage activity must be a positive number, got inf"),
    (dict(sessions=0.5), "usage sessions must be a number >= 1, got 0.5"),
])
def test_a_density_out_of_range_is_refused_naming_it(usage, message):
    with pytest.raises(ValueError, match=message):
        UsageDensity(**usage)


def test_the_command_line_passes_the_density_through(tmp_path):
    result = CliRunner().invoke(app, [
        "data", "generate", "--accounts", "20", "--months", "2", "--start", "2024-01-01",
        "--seed", "4", "--usage-activity", "3", "--usage-sessions", "1.5",
        "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "raw" / "_manifest.json").read_text())
    assert manifest["usage_density"] == {"activity": 3.0, "sessions": 1.5}
    refused = CliRunner().invoke(app, [
        "data", "generate", "--accounts", "20", "--months", "2", "--usage-sessions", "0.5",
        "--data-dir", str(tmp_path / "other")])
    assert refused.exit_code == 2 and "--usage-sessions" in refused.output
    assert not (tmp_path / "other" / "raw").exists()
