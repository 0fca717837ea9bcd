"""The commands as a user runs them: exit codes, messages, and nothing written on bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from propensity_cli import app
from tests.features.raw_fixture import valid_frames, write_raw

runner = CliRunner()


@pytest.fixture()
def data_dir(tmp_path):
    write_raw(tmp_path / "raw", valid_frames(), extracted_at="2025-01-01")
    return tmp_path


def run(*args: str):
    return runner.invoke(app, list(args))


def files_under(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_help_everywhere():
    for args in ([], ["data"], ["features"], ["data", "generate"], ["features", "build"],
                 ["kpis"], ["demo"]):
        result = run(*args, "--help")
        assert result.exit_code == 0, (args, result.output)
        assert "Usage" in result.output


def test_validate_valid_data(data_dir):
    result = run("data", "validate", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    assert "usage_events" in result.output


def test_validate_names_table_column_rule_and_examples(data_dir):
    frames = valid_frames()
    frames["subscriptions"].loc[0, "mrr"] = -5.0
    write_raw(data_dir / "raw", frames)
    result = run("data", "validate", "--data-dir", str(data_dir))
    assert result.exit_code == 1
    assert "subscriptions.mrr: negative value (rule: mrr >= 0): 1 row" in result.output
    assert "subscription_id=S1" in result.output


def test_build_writes_snapshots_and_bad_input_writes_nothing(data_dir):
    result = run("features", "build", "--from", "2024-10-01", "--to", "2024-12-31",
                 "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    snapshots = sorted(p.name for p in (data_dir / "features").iterdir())
    assert snapshots == [".versions", "as_of=2024-10-01", "as_of=2024-11-01", "as_of=2024-12-01"]
    first = pd.read_parquet(data_dir / "features" / "as_of=2024-12-01")
    assert set(first["account_id"]) <= {"A1", "A2", "A3"}

    before = files_under(data_dir)
    frames = valid_frames()
    frames["usage_events"].loc[0, "account_id"] = "NOPE"
    write_raw(data_dir / "raw", frames)
    result = run("features", "build", "--as-of", "2024-12-01", "--data-dir", str(data_dir))
    assert result.exit_code == 1
    assert "usage_events.account_id: orphan foreign key" in result.output
    assert files_under(data_dir) == before


def test_as_of_after_extraction_is_refused(data_dir):
    result = run("features", "build", "--as-of", "2025-02-01", "--data-dir", str(data_dir))
    assert result.exit_code == 1
    assert "after the data's extraction time 2025-01-01" in result.output
    assert not (data_dir / "features").exists()


@pytest.mark.parametrize("args, message", [
    (["--as-of", "2024-12-01", "--from", "2024-01-01"], "either --as-of or --from/--to"),
    ([], "give --as-of DATE, or --from DATE --to DATE"),
    (["--from", "2024-01-02", "--to", "2024-01-20"], "no --every month date between"),
    (["--from", "2024-01-01", "--to", "2024-03-01", "--every", "fortnight"],
     "--every 'fortnight': choose day, week, month"),
    (["--from", "2024-01-01", "--to", "2024-03-01", "--every", "week", "--week-start", "x"],
     "--week-start 'x'"),
])
def test_build_argument_errors(data_dir, args, message):
    result = run("features", "build", *args, "--data-dir", str(data_dir))
    assert result.exit_code == 2
    assert message in result.output


def test_weekly_grid_on_a_chosen_weekday_validates_once(data_dir, monkeypatch):
    import features.pipeline as pipeline

    calls = []
    real = pipeline.open_validated
    monkeypatch.setattr(pipeline, "open_validated", lambda s: calls.append(1) or real(s))
    result = run("features", "build", "--from", "2024-12-01", "--to", "2024-12-20",
                 "--every", "week", "--week-start", "fri", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (data_dir / "features").glob("as_of=*")) == [
        "as_of=2024-12-06", "as_of=2024-12-13", "as_of=2024-12-20"]
    assert calls == [1]


def test_warnings_exit_0_and_profile_names_absent_tables(tmp_path):
    frames = {k: v for k, v in valid_frames().items()
              if k in ("accounts", "subscriptions", "usage_events")}
    frames["accounts"]["owner"] = None
    write_raw(tmp_path / "raw", frames)
    result = run("data", "validate", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "warning: accounts.owner: null values (rule: null owner is shown as 'unassigned'): " \
           "3 rows" in result.output
    assert "warning: support_tickets: optional table absent" in result.output
    profile = run("data", "profile", "--data-dir", str(tmp_path))
    assert profile.exit_code == 0, profile.output
    assert "feature profile as_of=2025-01-01" in profile.output
    assert "tables absent: activities, contacts, nps_responses, support_tickets" in profile.output
    build = run("features", "build", "--as-of", "2024-12-01", "--data-dir", str(tmp_path))
    assert build.exit_code == 0, build.output
    assert "feature profile as_of=2024-12-01" in build.output


def test_kpis_rejects_unknown_grouping_and_writes_parquet(data_dir):
    bad = run("kpis", "--by", "month,planet", "--data-dir", str(data_dir))
    assert bad.exit_code == 2 and "unknown grouping planet" in bad.output
    good = run("kpis", "--by", "month,segment", "--data-dir", str(data_dir))
    assert good.exit_code == 0, good.output
    frame = pd.read_parquet(data_dir / "kpis" / "kpis_by_month_segment.parquet")
    assert {"month", "segment", "logo_churn_rate", "net_revenue_retention"} <= set(frame.columns)


def test_generate_rejects_a_start_that_is_not_a_month_start(tmp_path):
    result = run("data", "generate", "--accounts", "5", "--months", "2", "--start", "2024-01-15",
                 "--data-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "first day of a month" in result.output
    assert not (tmp_path / "raw").exists()


def test_unparsable_dates_are_named(data_dir):
    result = run("features", "build", "--as-of", "2024-13-01", "--data-dir", str(data_dir))
    assert result.exit_code == 2
    # Dates are typed options: the parser names the option and the value (a usage error).
    assert "'--as-of': '2024-13-01': not a date" in result.output


@pytest.mark.parametrize("args, options", [
    (["features", "build"], ["--as-of", "--from", "--to"]),
    (["data", "generate"], ["--start"]),
])
def test_date_options_show_a_date_in_help(args, options):
    lines = run(*args, "--help").output.splitlines()
    for option in options:
        line = next(line for line in lines if f" {option} " in line)
        assert "DATE" in line and "<str>" not in line, line


def test_generate_then_build_end_to_end(tmp_path):
    result = run("data", "generate", "--accounts", "60", "--months", "5", "--start", "2024-01-01",
                 "--seed", "3", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "truth" / "account_month_truth.parquet").exists()
    result = run("features", "build", "--from", "2024-02-01", "--to", "2024-06-01",
                 "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "features").glob("as_of=*/part-0.parquet"))) == 5


def test_a_full_disk_during_build_is_one_line_and_keeps_the_old_snapshot(data_dir,
                                                                        monkeypatch):
    import errno

    import pyarrow.parquet as pq

    args = ["features", "build", "--as-of", "2024-12-01", "--data-dir", str(data_dir)]
    assert run(*args).exit_code == 0
    folder = data_dir / "features" / "as_of=2024-12-01"
    before = (folder / "part-0.parquet").read_bytes()
    versions = sorted(p.name for p in (data_dir / "features" / ".versions").iterdir())

    def full(table, where, *a, **k):
        Path(where).write_bytes(b"PAR1 half")  # the writer had begun
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    result = run(*args)
    assert result.exit_code == 1
    assert " ".join(result.output.split()) == (
        f"error: cannot write the feature snapshot as_of=2024-12-01 to {folder}: No space "
        "left on device; the previous version (if any) is unchanged")
    assert (folder / "part-0.parquet").read_bytes() == before
    assert sorted(p.name for p in (data_dir / "features" / ".versions").iterdir()) == versions
