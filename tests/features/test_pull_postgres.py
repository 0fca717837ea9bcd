"""Pulling from a real PostgreSQL server (started by the tests, tests/postgres_server.py): a book
loaded into it comes back as the same features as from its files; bad sources are one sentence
and leave nothing written."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import adbc_driver_postgresql.dbapi as pg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from features.contract import TABLES
from features.pipeline import build_snapshots
from features.settings import Settings
from propensity_cli import app
from simulator.generator import generate_into
from tests.postgres_server import PASSWORD, free_port

pytestmark = pytest.mark.postgres
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def load_tables(uri: str, tables: dict[str, pa.Table]) -> None:
    """Create and fill one PostgreSQL table per Arrow table (ADBC bulk ingest)."""
    with pg.connect(uri) as conn:
        with conn.cursor() as cursor:
            for name, table in tables.items():
                cursor.adbc_ingest(name, table, mode="create")
        conn.commit()


def execute(uri: str, *statements: str) -> None:
    with pg.connect(uri) as conn:
        with conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        conn.commit()


def written(data_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*")) \
        if data_dir.exists() else []


@pytest.fixture(scope="module")
def book(tmp_path_factory, postgres_server):
    """A small generated book as files and as tables of a PostgreSQL database."""
    files = tmp_path_factory.mktemp("files")
    generate_into(files, n_accounts=40, months=6, seed=7, start=date(2024, 1, 1))
    raw = files / "raw"
    uri = postgres_server.create_database("book")
    load_tables(uri, {name: pq.read_table(raw / f"{name}.parquet") for name in TABLES})
    return files, uri


def test_a_book_in_postgres_pulls_to_byte_identical_feature_snapshots(book, tmp_path):
    files, uri = book
    extracted = json.loads((files / "raw" / "_manifest.json").read_text())["extracted_at"]
    pulled = tmp_path / "pulled"
    result = run("data", "pull", "--source", uri, "--as-of-extraction", extracted,
                 "--data-dir", pulled)
    assert result.exit_code == 0, result.output

    manifest = json.loads((pulled / "raw" / "_manifest.json").read_text())
    assert manifest["extracted_at"] == "2024-07-01T00:00:00"
    assert manifest["source"] == uri.replace(PASSWORD, "***")
    assert PASSWORD not in (pulled / "raw" / "_manifest.json").read_text()
    assert (pulled / "raw").resolve() == (pulled / "exports" / "2024-07-01T000000").resolve()
    for name in TABLES:
        original = pq.read_table(files / "raw" / f"{name}.parquet")
        assert manifest["tables"][name]["rows"] == original.num_rows
        schema = pq.read_schema(pulled / "raw" / f"{name}.parquet")
        assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in original.schema]

    dates = [date(2024, 3, 1), date(2024, 5, 1), date(2024, 7, 1)]
    build_snapshots(Settings(data_dir=files), dates)
    build_snapshots(Settings(data_dir=pulled), dates)
    for day in dates:
        part = Path(f"features/as_of={day}/part-0.parquet")
        assert (pulled / part).read_bytes() == (files / part).read_bytes(), day


def test_the_extraction_time_defaults_to_the_server_clock(book, tmp_path):
    _, uri = book
    result = run("data", "pull", "--source", uri, "--data-dir", tmp_path)
    assert result.exit_code == 0, result.output
    stamp = json.loads((tmp_path / "raw" / "_manifest.json").read_text())["extracted_at"]
    assert stamp > "2026-01-01"
    assert (tmp_path / "raw").resolve().parent == (tmp_path / "exports").resolve()


def test_any_adbc_driver_is_a_configuration_away(book, tmp_path):
    """The generic form, adbc+<driver package>:<the driver's URI>, here with PostgreSQL's."""
    _, uri = book
    result = run("data", "pull", "--source", f"adbc+adbc_driver_postgresql:{uri}",
                 "--as-of-extraction", "2024-07-01", "--data-dir", tmp_path)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "raw" / "_manifest.json").read_text())
    assert manifest["source"] == "adbc+adbc_driver_postgresql:" + uri.replace(PASSWORD, "***")
    assert run("data", "validate", "--data-dir", tmp_path).exit_code == 0


def test_a_mapping_query_runs_in_postgres(book, tmp_path):
    _, uri = book
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        '[nps_responses]\n'
        'query = """SELECT account_id, NULL::text AS contact, responded_at, score\n'
        '           FROM nps_responses WHERE score >= 9"""\n'
        '[nps_responses.columns]\n'
        'contact_id = "contact"\n')
    data = tmp_path / "data"
    result = run("data", "pull", "--source", uri, "--mapping", mapping,
                 "--as-of-extraction", "2024-07-01", "--data-dir", data)
    assert result.exit_code == 0, result.output
    nps = pq.read_table(data / "raw" / "nps_responses.parquet")
    assert nps.column("score").to_pylist() and min(nps.column("score").to_pylist()) == 9
    assert nps.column("contact_id").null_count == nps.num_rows


def fails(result, data_dir: Path) -> str:
    assert result.exit_code == 1, result.output
    assert written(data_dir) == []
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_an_unreachable_server_is_one_sentence(tmp_path):
    port = free_port()
    uri = f"postgresql://propensity:{PASSWORD}@127.0.0.1:{port}/book"
    line = fails(run("data", "pull", "--source", uri, "--data-dir", tmp_path), tmp_path)
    assert line == (f"error: cannot connect to postgresql://propensity:***@127.0.0.1:{port}/book:"
                    " no database server answers there (check the host and port)")


def test_a_wrong_password_is_refused_and_never_echoed(postgres_server, tmp_path):
    uri = postgres_server.uri("postgres", password="not-the-pw")
    line = fails(run("data", "pull", "--source", uri, "--data-dir", tmp_path), tmp_path)
    assert line == (f"error: cannot connect to postgresql://propensity:***@127.0.0.1:"
                    f"{postgres_server.port}/postgres: the server refused the user name or "
                    f"password (user propensity)")
    assert "not-the-pw" not in line


def test_a_missing_table_is_named(postgres_server, tmp_path):
    uri = postgres_server.create_database("empty")
    line = fails(run("data", "pull", "--source", uri, "--data-dir", tmp_path), tmp_path)
    masked = uri.replace(PASSWORD, "***")
    assert line == (f"error: {masked} has no table accounts (a required contract table; name it "
                    f"so, or map it from another table with --mapping)")


@pytest.fixture()
def broken(postgres_server, book, request):
    """A copy of the book's database, changed by the test."""
    files, _ = book
    uri = postgres_server.create_database(request.node.name[:40].lower())
    load_tables(uri, {name: pq.read_table(files / "raw" / f"{name}.parquet")
                      for name in TABLES})
    return uri


def test_a_missing_column_is_named(broken, tmp_path):
    execute(broken, "ALTER TABLE accounts DROP COLUMN owner")
    line = fails(run("data", "pull", "--source", broken, "--data-dir", tmp_path), tmp_path)
    assert line.startswith(f"error: {broken.replace(PASSWORD, '***')}: table accounts has no "
                           f"column owner (the contract's accounts.owner; map it with --mapping; "
                           f"accounts has account_id, name, parent_account_id, segment,")


def test_a_failing_query_is_one_sentence(broken, tmp_path):
    mapping = tmp_path / "m.toml"
    mapping.write_text('[activities]\nquery = "SELECT account_id, occurred_at, type, 1/0 AS x '
                       'FROM activities"\n')
    data = tmp_path / "data"
    line = fails(run("data", "pull", "--source", broken, "--mapping", mapping,
                     "--data-dir", data), data)
    assert line == (f"error: the query of [activities] ({mapping} line 2) fails in "
                    f"{broken.replace(PASSWORD, '***')}: division by zero")


def test_a_value_that_cannot_be_cast_names_table_column_and_value(broken, tmp_path):
    execute(broken,
            "ALTER TABLE subscriptions ALTER COLUMN seats TYPE text",
            "UPDATE subscriptions SET seats = 'ten' WHERE subscription_id = "
            "(SELECT min(subscription_id) FROM subscriptions)")
    line = fails(run("data", "pull", "--source", broken, "--data-dir", tmp_path), tmp_path)
    assert line == ("error: subscriptions.seats: the value 'ten' of subscriptions.seats is not "
                    "an int64")


def test_a_query_failing_mid_stream_is_one_sentence(broken, tmp_path):
    """The error comes after the first batches were written: still one sentence, nothing kept."""
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        '[accounts]\nquery = """SELECT q.*, repeat(\'x\', 2000) AS pad, 1 / (15000 - i) AS boom\n'
        "FROM (SELECT a.*, row_number() OVER () AS i FROM accounts a, generate_series(1, 500))"
        ' AS q"""\n')
    data = tmp_path / "data"
    line = fails(run("data", "pull", "--source", broken, "--mapping", mapping,
                     "--data-dir", data), data)
    assert line == (f"error: the query of [accounts] ({mapping} line 2) fails in "
                    f"{broken.replace(PASSWORD, '***')}: division by zero")


def test_the_password_can_come_from_libpq_environment(book, tmp_path, monkeypatch):
    """PGPASSWORD (or ~/.pgpass) keeps the password off the command line and out of the URI."""
    _, uri = book
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    monkeypatch.setenv("PROPENSITY_SOURCE", uri.replace(f":{PASSWORD}@", "@"))
    result = run("data", "pull", "--as-of-extraction", "2024-07-01", "--data-dir", tmp_path)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "raw" / "_manifest.json").read_text())
    assert manifest["source"] == uri.replace(f":{PASSWORD}@", "@")


def test_redshift_uris_use_the_postgresql_driver_without_its_snapshot_transaction(book, tmp_path):
    """redshift:// speaks PostgreSQL's protocol (tested here against PostgreSQL itself): no
    REPEATABLE READ transaction or server clock, so the extraction time is now."""
    _, uri = book
    redshift = "redshift" + uri.removeprefix("postgresql")
    result = run("data", "pull", "--source", redshift, "--data-dir", tmp_path)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "raw" / "_manifest.json").read_text())
    assert manifest["source"] == redshift.replace(PASSWORD, "***")
    assert manifest["tables"]["usage_events"]["rows"] == pq.read_metadata(
        book[0] / "raw" / "usage_events.parquet").num_rows
