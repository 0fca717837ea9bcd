"""``data pull`` from folders: the Salesforce and HubSpot example mappings on fixtures written in
those systems' own names, the dated exports and the raw link, and mapping errors that name the
mapping line, the source table or column, and what is missing."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from features.connectors import mask_uri
from features.mapping import key_lines
from propensity_cli import app
from tests.features.raw_fixture import valid_frames, write_raw

ROOT = Path(__file__).resolve().parents[2]
CRM = Path(__file__).parent / "crm"
MAPPINGS = ROOT / "examples" / "mappings"
runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def rows(data_dir: Path, table: str) -> list[dict]:
    return pq.read_table(data_dir / "raw" / f"{table}.parquet").to_pylist()


def pull_crm(name: str, data_dir: Path):
    result = run("data", "pull", "--source", CRM / name, "--mapping", MAPPINGS / f"{name}.toml",
                 "--as-of-extraction", "2025-01-01", "--data-dir", data_dir)
    assert result.exit_code == 0, result.output
    validated = run("data", "validate", "--data-dir", data_dir)
    assert validated.exit_code == 0, validated.output
    built = run("features", "build", "--as-of", "2024-12-01", "--data-dir", data_dir)
    assert built.exit_code == 0, built.output
    assert (data_dir / "features" / "as_of=2024-12-01" / "part-0.parquet").exists()


def test_a_salesforce_export_pulls_validates_and_builds(tmp_path):
    pull_crm("salesforce", tmp_path)
    assert [(a["account_id"], a["parent_account_id"], a["segment"], a["region"],
             a["created_at"], a["external_id"]) for a in rows(tmp_path, "accounts")] == [
        ("001A000001", None, "enterprise", "EMEA", datetime(2023, 1, 15, 10, 22, 31),
         "001A000001"),
        ("001A000002", "001A000001", "mid-market", "EMEA", datetime(2023, 3, 1, 8), "001A000002"),
        ("001A000003", None, "SMB", "NA", datetime(2023, 5, 5, 14, 30), "001A000003"),
    ]  # the deleted account is filtered out; the optional external id is mapped
    assert [(s["subscription_id"], s["account_id"], s["product"], s["seats"], s["mrr"],
             s["end_date"], s["discount_pct"], s["auto_renew"], s["cancelled_at"])
            for s in rows(tmp_path, "subscriptions")] == [
        ("00kA0001", "001A000001", "Analytics", 50, 1000.0, date(2024, 2, 1), 0.0, True, None),
        ("00kA0002", "001A000001", "Analytics", 60, 1080.0, date(2025, 2, 1), 10.0, True, None),
        ("00kA0003", "001A000002", "Reporting", 10, 100.0, date(2024, 4, 1), 0.0, False,
         datetime(2023, 12, 15, 16)),
        ("00kA0004", "001A000003", "Reporting", 5, 50.0, date(2024, 6, 1), 0.0, True, None),
    ]  # the lost opportunity's line item is not a term
    assert [(t["priority"], t["escalated"], t["csat"]) for t in rows(tmp_path, "support_tickets")] \
        == [("high", False, 4.0), ("urgent", True, None), ("normal", False, 5.0)]
    assert [(c["role"], c["start_date"], c["end_date"]) for c in rows(tmp_path, "contacts")] == [
        ("champion", date(2023, 1, 20), None),
        ("economic buyer", date(2023, 1, 20), date(2024, 3, 31)),
        ("user", date(2023, 5, 10), None),
    ]
    assert sorted((a["account_id"], a["type"]) for a in rows(tmp_path, "activities")) == [
        ("001A000001", "call"), ("001A000001", "qbr"), ("001A000002", "onboarding session"),
        ("001A000003", "email"),
    ]  # the task not yet done is left out
    manifest = json.loads((tmp_path / "raw" / "_manifest.json").read_text())
    assert manifest["tables"]["accounts"] == {"rows": 3, "from": "Account"}
    assert "nps_responses" not in manifest["tables"]
    assert manifest["mapping"]["path"] == str(MAPPINGS / "salesforce.toml")


def test_a_hubspot_export_pulls_validates_and_builds(tmp_path):
    pull_crm("hubspot", tmp_path)
    assert [(a["account_id"], a["segment"], a["owner"], a["external_id"])
            for a in rows(tmp_path, "accounts")] == [
        ("101", "enterprise", "9001", None), ("102", "mid-market", "9001", None),
        ("103", "SMB", "9002", None)]  # the optional external id, not mapped: null
    assert [(s["subscription_id"], s["mrr"], s["billing_period"], s["end_date"])
            for s in rows(tmp_path, "subscriptions")] == [
        ("201", 1000.0, "annual", date(2024, 2, 1)), ("202", 1080.0, "annual", date(2025, 2, 1)),
        ("203", 100.0, "monthly", None), ("204", 50.0, "annual", date(2024, 6, 1)),
    ]
    assert [(t["priority"], t["escalated"]) for t in rows(tmp_path, "support_tickets")] == [
        ("high", False), ("urgent", True), ("normal", False)]
    assert [(n["account_id"], n["contact_id"], n["score"])
            for n in rows(tmp_path, "nps_responses")] == [("101", "501", 9), ("103", None, 3)]
    assert [(u["user_id"], u["event_type"], u["quantity"])
            for u in rows(tmp_path, "usage_events")] == [
        ("ada@acme.example", "Dashboard Viewed", 1), ("bob@acme.example", "Report Exported", 1),
        ("cy@beta.example", "Dashboard Viewed", 1)]


@pytest.fixture()
def contract_folder(tmp_path) -> Path:
    """A folder export in the contract's names (CSV), extracted 2025-01-01."""
    folder = tmp_path / "export"
    write_raw(folder, valid_frames(), extracted_at="2025-01-01", fmt="csv")
    return folder


def test_exports_are_dated_kept_and_raw_points_at_the_newest(contract_folder, tmp_path):
    data = tmp_path / "data"
    write_raw(data / "raw", valid_frames(), extracted_at="2024-06-01")  # generated or copied
    assert run("data", "pull", "--source", contract_folder, "--data-dir", data).exit_code == 0
    assert (data / "raw").is_symlink()
    assert str((data / "raw").readlink()) == "exports/2025-01-01T000000"
    kept = [p for p in (data / "exports").iterdir() if p.name.startswith("local-")]
    assert len(kept) == 1 and (kept[0] / "accounts.parquet").exists()  # the old raw/, moved

    again = run("data", "pull", "--source", contract_folder, "--data-dir", data)
    assert again.exit_code == 0, again.output
    assert str((data / "raw").readlink()) == "exports/2025-01-01T000000.2"
    later = run("data", "pull", "--source", contract_folder, "--as-of-extraction",
                "2025-01-02T10:30:00+02:00", "--data-dir", data)
    assert later.exit_code == 0, later.output
    assert str((data / "raw").readlink()) == "exports/2025-01-02T083000"
    assert sorted(p.name for p in (data / "exports").iterdir() if not p.name.startswith("local")) \
        == ["2025-01-01T000000", "2025-01-01T000000.2", "2025-01-02T083000"]
    export = data / "exports" / "2025-01-01T000000"
    assert all(not p.stat().st_mode & 0o222 for p in export.iterdir())  # read-only files
    assert json.loads((export / "_manifest.json").read_text())["extracted_at"] \
        == "2025-01-01T00:00:00"
    assert run("data", "validate", "--data-dir", data).exit_code == 0


def test_generating_after_a_pull_leaves_the_export_alone(contract_folder, tmp_path):
    data = tmp_path / "data"
    assert run("data", "pull", "--source", contract_folder, "--data-dir", data).exit_code == 0
    export = data / "exports" / "2025-01-01T000000"
    before = sorted(p.name for p in export.iterdir())
    result = run("data", "generate", "--accounts", "5", "--months", "4", "--data-dir", data)
    assert result.exit_code == 0, result.output
    assert not (data / "raw").is_symlink()
    assert sorted(p.name for p in export.iterdir()) == before


def test_a_bad_extraction_time_is_a_usage_error(contract_folder, tmp_path):
    result = run("data", "pull", "--source", contract_folder, "--as-of-extraction", "soon",
                 "--data-dir", tmp_path / "data")
    assert result.exit_code == 2
    assert "'soon': not a time" in result.output


def one_error(result, data_dir: Path) -> str:
    assert result.exit_code == 1, result.output
    assert not data_dir.exists() or list(data_dir.iterdir()) == []
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0].removeprefix("error: ")


def pull_with(mapping_text: str, tmp_path: Path, source: Path = CRM / "salesforce") -> str:
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(mapping_text)
    data = tmp_path / "data"
    result = run("data", "pull", "--source", source, "--mapping", mapping,
                 "--as-of-extraction", "2025-01-01", "--data-dir", data)
    return one_error(result, data).replace(str(mapping), "M")


def salesforce_with(old: str, new: str) -> str:
    text = (MAPPINGS / "salesforce.toml").read_text()
    assert old in text
    return text.replace(old, new, 1)


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_mapped_column_the_source_lacks_names_line_table_and_column(tmp_path):
    text = salesforce_with('name = "Name"', 'name = "AccountName"')
    assert pull_with(text, tmp_path) == (
        f'M line {line_of(text, "AccountName")}: accounts.name = \'AccountName\': Account has no '
        f"column AccountName (Account has Id, IsDeleted, Name, ParentId, Type, Industry, "
        f"BillingCountry, NumberOfEmployees, OwnerId, CreatedDate)")


def test_a_missing_source_table_names_the_line(tmp_path):
    text = salesforce_with('table = "Case"', 'table = "Cases"')
    assert pull_with(text, tmp_path) == (
        f"M line {line_of(text, 'Cases')}: support_tickets.table = 'Cases': "
        f"{CRM / 'salesforce'} has no table Cases")


def test_a_contract_column_with_no_source_says_how_to_map_it(tmp_path):
    text = salesforce_with('owner = "OwnerId"\n', "")
    assert pull_with(text, tmp_path) == (
        f"M line {line_of(text, '[accounts]')}: [accounts] gives no source for accounts.owner "
        f"and Account has no column owner: map it under [accounts.columns], or derive it under "
        f'[accounts.derived] (e.g. owner = "NULL" when the source does not know it)')


def test_a_derived_expression_reading_a_missing_column_is_named(tmp_path):
    text = salesforce_with('discount_pct = "coalesce(CAST(Discount AS DOUBLE), 0)"',
                           'discount_pct = "coalesce(Rebate, 0)"')
    assert pull_with(text, tmp_path) == (
        f"M line {line_of(text, 'Rebate')}: subscriptions.discount_pct = 'coalesce(Rebate, 0)' "
        f"reads Rebate, which the query of [subscriptions] does not have (the query of "
        f"[subscriptions] has Id, AccountId, Family, ProductName, Quantity, TotalPrice, "
        f"Discount, StartDate, EndDate, ContractTerm, Auto_Renew__c, Cancelled_Date__c)")


@pytest.mark.parametrize(("old", "new", "needle", "message"), [
    ("[accounts.columns]", "[accounts.colums]", "colums",
     "accounts.colums: unknown key (a table section takes table, query, filter, columns, "
     "derived, values)"),
    ('account_id = "Id"', 'acount_id = "Id"', "acount_id",
     "accounts.acount_id is not a column of the contract table accounts (its columns: "
     "account_id, name, parent_account_id, segment, industry, region, owner, created_at, "
     "external_id)"),
    ('discount_pct = "coalesce(CAST(Discount AS DOUBLE), 0)"',
     'discount_pct = "(SELECT max(x) FROM t)"', "max(x)",
     "subscriptions.derived.discount_pct = '(SELECT max(x) FROM t)': only a scalar expression "
     "over the source's columns is allowed (no queries or sub-queries: put those in query = "
     "\"...\")"),
    ('table = "Contact"', 'table = "Contact"\nquery = "SELECT 1"', "[contacts]",
     "contacts: give either table = \"...\" or query = \"...\" (exactly one)"),
    ('[activities]', '[activity]', "[activity]",
     "[activity] is not a contract table (known: accounts, subscriptions, usage_events, "
     "support_tickets, nps_responses, contacts, activities, health_scores)"),
    ('ticket_id = "Id"', 'ticket_id = "Id"\nescalated = "IsEscalated"', "escalated",
     None),
])
def test_mapping_file_errors_name_the_line(tmp_path, old, new, needle, message):
    text = salesforce_with(old, new)
    error = pull_with(text, tmp_path)
    if message is None:  # a TOML error: the key is written twice
        assert error.startswith("mapping M: not valid TOML (Cannot overwrite a value")
        return
    assert error == f"M line {line_of(text, needle)}: {message}"


def test_a_failing_query_in_a_folder_source_is_one_sentence(tmp_path):
    text = salesforce_with("FROM Event\n", "FROM Events\n")
    error = pull_with(text, tmp_path)
    assert error.startswith(f"the query of [activities] (M line {line_of(text, 'query')}"[:30])
    assert f"fails in {CRM / 'salesforce'}: Catalog Error: Table with name Events does not " \
           "exist!" in error


def test_a_value_that_cannot_be_cast_names_table_column_and_value(tmp_path):
    source = tmp_path / "crm"
    shutil.copytree(CRM / "salesforce", source)
    items = source / "OpportunityLineItem.csv"
    items.write_text(items.read_text().replace("00kA0003,006A0003,01tA0002,10,",
                                               "00kA0003,006A0003,01tA0002,ten,"))
    text = (MAPPINGS / "salesforce.toml").read_text()
    assert pull_with(text, tmp_path, source) == (
        "subscriptions.seats: the value 'ten' of the query of [subscriptions].Quantity is not an "
        "int64")


def test_without_a_mapping_a_missing_required_table_is_named(contract_folder, tmp_path):
    (contract_folder / "usage_events.csv").unlink()
    data = tmp_path / "data"
    error = one_error(run("data", "pull", "--source", contract_folder, "--data-dir", data), data)
    assert error == (f"{contract_folder} has no table usage_events (a required contract table; "
                     f"name it so, or map it from another table with --mapping)")


def test_an_unknown_source_kind_is_named(tmp_path):
    error = one_error(run("data", "pull", "--source", "mongodb://u:pw@host/db", "--data-dir",
                          tmp_path / "d"), tmp_path / "d")
    assert error == ("source mongodb://u:***@host/db: unknown kind 'mongodb' (give a folder, "
                     "postgresql://..., adbc+<driver>:<uri> or sqlalchemy+<url> for another "
                     "database)")


@pytest.mark.parametrize(("uri", "masked"), [
    ("postgresql://ann:pw@db:5432/crm", "postgresql://ann:***@db:5432/crm"),
    ("postgresql://ann@db/crm?password=pw&sslmode=require",
     "postgresql://ann@db/crm?password=%2A%2A%2A&sslmode=require"),
    ("adbc+adbc_driver_snowflake:snowflake://ann:pw@acct/db",
     "adbc+adbc_driver_snowflake:snowflake://ann:***@acct/db"),
    ("/data/export", "/data/export"),
    ("adbc+adbc_driver_snowflake:ann:pw@acct/db/crm?warehouse=wh",
     "adbc+adbc_driver_snowflake:ann:***@acct/db/crm?warehouse=wh"),
    ("adbc+adbc_driver_bigquery:?adbc.bigquery.sql.project_id=p&"
     "adbc.bigquery.sql.auth_credentials=%7Bkey%7D",
     "adbc+adbc_driver_bigquery:?adbc.bigquery.sql.project_id=p&"
     "adbc.bigquery.sql.auth_credentials=%2A%2A%2A"),
    ("redshift://ann:p%40ss@cluster:5439/dev", "redshift://ann:***@cluster:5439/dev"),
])
def test_passwords_are_masked(uri, masked):
    assert mask_uri(uri) == masked


def test_key_lines_finds_tables_dotted_and_inline_keys():
    text = ('# c\n[accounts]\ntable = "A"\n[accounts.columns]\nname = "N"\n'
            '"owner" = "O"\n[contacts]\ncolumns = { role = "R", "end_date" = "E" }\n'
            'derived.start_date = "x"\n')
    assert key_lines(text) == {
        ("accounts",): 2, ("accounts", "table"): 3, ("accounts", "columns"): 4,
        ("accounts", "columns", "name"): 5, ("accounts", "columns", "owner"): 6,
        ("contacts",): 7, ("contacts", "columns"): 8, ("contacts", "columns", "role"): 8,
        ("contacts", "columns", "end_date"): 8, ("contacts", "derived", "start_date"): 9,
    }


def sqlite_book(path: Path, frames: dict) -> str:
    """The frames as tables of a SQLite database (stdlib driver, SQLAlchemy's own dialect)."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        for name, frame in frames.items():
            frame.to_sql(name, conn, index=False)
    return f"sqlalchemy+sqlite:///{path}"


def test_a_sqlalchemy_database_pulls_the_same_tables_as_the_files(contract_folder, tmp_path):
    frames = valid_frames()
    uri = sqlite_book(tmp_path / "crm.db", frames)
    via_files, via_sql = tmp_path / "files", tmp_path / "sql"
    assert run("data", "pull", "--source", contract_folder, "--data-dir", via_files).exit_code == 0
    result = run("data", "pull", "--source", uri, "--as-of-extraction", "2025-01-01",
                 "--data-dir", via_sql)
    assert result.exit_code == 0, result.output
    for name in frames:
        assert rows(via_sql, name) == rows(via_files, name), name
    assert run("data", "validate", "--data-dir", via_sql).exit_code == 0


def test_a_sqlalchemy_query_error_is_one_sentence(tmp_path):
    uri = sqlite_book(tmp_path / "crm.db", valid_frames())
    mapping = tmp_path / "m.toml"
    mapping.write_text('[activities]\nquery = "SELECT account_id, occurred_at, type FROM acts"\n')
    data = tmp_path / "data"
    error = one_error(run("data", "pull", "--source", uri, "--mapping", mapping,
                          "--data-dir", data), data)
    assert error == (f"the query of [activities] ({mapping} line 2) fails in {uri}: "
                     f"no such table: acts")
