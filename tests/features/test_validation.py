"""The raw data contract checks: one small bad input per rule, with the exact report it gives."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.contract import DUCKDB_TYPES, OPTIONAL_TABLES, REQUIRED_TABLES, TABLES
from features.sources import ContractError, open_raw
from features.validation import Violation, load_tables, validate
from tests.features.raw_fixture import valid_frames, write_raw

SUB = ("subscription_id",)
ACC = ("account_id",)
EVENT = ("account_id", "event_time")


def check(
    tmp_path: Path, frames: dict[str, pd.DataFrame], fmt: str = "parquet", **kw
) -> list[Violation]:
    return validate(open_raw(write_raw(tmp_path / fmt, frames, fmt, **kw)))


def messages(violations: list[Violation]) -> list[str]:
    return [v.message() for v in violations]


# --- valid data ----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_valid_tables_pass_and_load_with_contract_types(tmp_path, fmt):
    raw_dir = write_raw(tmp_path, valid_frames(), fmt)
    assert validate(open_raw(raw_dir)) == []

    tables = load_tables(raw_dir)
    assert tables.present == frozenset(TABLES)
    assert tables.extracted_at == pd.Timestamp("2025-01-01").to_pydatetime()
    for table in TABLES.values():
        described = tables.con.execute(f'DESCRIBE "{table.name}"').fetchall()
        assert [(r[0], r[1]) for r in described] == [
            (c.name, DUCKDB_TYPES[c.type]) for c in table.columns
        ]
    s3 = tables.sql(
        "SELECT seats, mrr, start_date, end_date, cancelled_at, auto_renew FROM subscriptions "
        "WHERE subscription_id = 'S3'"
    ).iloc[0]
    assert (s3.seats, s3.mrr, s3.auto_renew) == (5, 200.0, False)
    assert s3.start_date == pd.Timestamp("2023-06-01")
    assert pd.isna(s3.end_date)
    assert s3.cancelled_at == pd.Timestamp("2024-10-15 10:00:00")


def test_optional_tables_may_be_absent(tmp_path):
    frames = {name: f for name, f in valid_frames().items() if name in REQUIRED_TABLES}
    raw_dir = write_raw(tmp_path, frames)
    assert [(v.table, v.rule, v.level) for v in validate(open_raw(raw_dir))] == [
        (name, "optional table absent", "warning") for name in OPTIONAL_TABLES
    ]

    tables = load_tables(raw_dir)
    assert tables.warnings == tuple(
        f"{name}: optional table absent (rule: its features are null)" for name in OPTIONAL_TABLES
    )
    assert tables.present == frozenset({"accounts", "subscriptions", "usage_events"})
    for name in OPTIONAL_TABLES:
        assert tables.sql(f'SELECT count(*) AS n FROM "{name}"').n[0] == 0
        described = tables.con.execute(f'DESCRIBE "{name}"').fetchall()
        assert [r[1] for r in described] == [DUCKDB_TYPES[c.type] for c in TABLES[name].columns]


def test_extra_columns_are_kept(tmp_path):
    frames = valid_frames()
    frames["accounts"]["crm_tier"] = ["gold", "silver", "bronze"]
    tables = load_tables(write_raw(tmp_path, frames, "csv"))
    assert tables.sql("SELECT account_id, crm_tier FROM accounts ORDER BY account_id").to_dict(
        "list"
    ) == {"account_id": ["A1", "A2", "A3"], "crm_tier": ["gold", "silver", "bronze"]}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_an_optional_column_may_be_absent_and_is_then_null(tmp_path, fmt):
    frames = valid_frames()
    assert "external_id" not in frames["accounts"]
    absent = load_tables(write_raw(tmp_path / "absent", frames, fmt))
    assert absent.warnings == ()
    assert absent.sql("SELECT external_id FROM accounts").external_id.isna().all()

    frames["accounts"]["external_id"] = ["0015A", None, "0015C"]
    given = load_tables(write_raw(tmp_path / "given", frames, fmt))
    assert given.sql("SELECT account_id, external_id FROM accounts ORDER BY account_id")\
        .fillna("-").to_dict("list") == {"account_id": ["A1", "A2", "A3"],
                                         "external_id": ["0015A", "-", "0015C"]}


def test_scheduled_end_after_extraction_is_allowed_but_stamps_are_not(tmp_path):
    # S4 ends 2025-07-01 (fixture) after the extraction on 2025-01-01: a scheduled date, fine.
    # An event stamped exactly at the extraction time, or a contact who left after it, is not.
    frames = valid_frames()
    frames["usage_events"].loc[4, "event_time"] = pd.Timestamp("2025-01-01 00:00:00")
    frames["contacts"].loc[1, "end_date"] = pd.Timestamp("2025-02-01").date()
    assert check(tmp_path, frames) == [
        Violation(
            "usage_events", "event_time", "after extraction time", 1,
            ("A3, 2025-01-01 00:00:00",), "event_time < 2025-01-01 00:00:00", EVENT,
        ),
        Violation(
            "contacts", "end_date", "after extraction time", 1, ("C2",),
            "end_date < 2025-01-01 00:00:00", ("contact_id",),
        ),
    ]


def test_without_manifest_the_extraction_rule_is_skipped(tmp_path):
    frames = valid_frames()
    frames["usage_events"].loc[4, "event_time"] = pd.Timestamp("2030-01-01")
    raw = open_raw(write_raw(tmp_path, frames, extracted_at=None))
    assert raw.extracted_at is None
    assert validate(raw) == []


# --- one rule each -------------------------------------------------------------------------
def test_missing_required_table(tmp_path):
    frames = valid_frames()
    del frames["accounts"]  # foreign keys to it are then not checked
    violations = check(tmp_path, frames)
    assert violations == [Violation("accounts", None, "missing required table", 0, ())]
    assert messages(violations) == ["accounts: missing required table"]


def test_missing_column(tmp_path):
    frames = valid_frames()
    frames["subscriptions"] = frames["subscriptions"].drop(columns=["mrr"])
    violations = check(tmp_path, frames, "csv")
    assert violations == [Violation("subscriptions", "mrr", "missing column", 0, ())]
    assert messages(violations) == ["subscriptions.mrr: missing column"]


def test_wrong_type_in_csv(tmp_path):
    frames = valid_frames()
    frames["subscriptions"]["seats"] = ["10", "ten", "1.5", "50"]  # 1.5 would round to 2
    violations = check(tmp_path, frames, "csv")
    assert violations == [
        Violation("subscriptions", "seats", "wrong type", 2, ("S2", "S3"), "seats is int64", SUB)
    ]
    assert messages(violations) == [
        "subscriptions.seats: wrong type (rule: seats is int64): 2 rows, e.g. "
        "subscription_id=S2, S3"
    ]


def test_wrong_type_in_parquet_string_column(tmp_path):
    frames = valid_frames()
    frames["usage_events"]["quantity"] = ["1", "3", "x", "2", "1"]
    violations = check(tmp_path, frames)
    assert violations == [
        Violation(
            "usage_events", "quantity", "wrong type", 1, ("A2, 2024-11-20 09:15:00",),
            "quantity is int64", EVENT,
        )
    ]
    assert messages(violations) == [
        "usage_events.quantity: wrong type (rule: quantity is int64): 1 row, e.g. "
        "(account_id, event_time)=(A2, 2024-11-20 09:15:00)"
    ]


def test_wrong_type_in_parquet_physical_type(tmp_path):
    frames = valid_frames()
    frames["subscriptions"]["seats"] = [10.0, 12.5, 5.0, 50.0]  # whole floats are fine
    frames["support_tickets"]["escalated"] = pd.to_datetime(["2024-05-01", "2024-05-02"])
    assert messages(check(tmp_path, frames)) == [
        "subscriptions.seats: wrong type (rule: seats is int64): 1 row, e.g. subscription_id=S2",
        "support_tickets.escalated: wrong type (rule: escalated is bool): 2 rows, e.g. "
        "ticket_id=T1, T2",
    ]


def test_unparsable_date(tmp_path):
    frames = valid_frames()
    frames["subscriptions"]["start_date"] = ["2023-01-01", "2024-02-30", "2023-06-01", "soon"]
    violations = check(tmp_path, frames, "csv")
    assert violations == [
        Violation(
            "subscriptions", "start_date", "unparsable date", 2, ("S2", "S4"),
            "start_date is date", SUB,
        )
    ]
    assert messages(violations) == [
        "subscriptions.start_date: unparsable date (rule: start_date is date): 2 rows, e.g. "
        "subscription_id=S2, S4"
    ]


def test_date_with_a_time_of_day_is_unparsable(tmp_path):
    frames = valid_frames()
    frames["contacts"]["start_date"] = pd.to_datetime(["2022-01-10 00:00", "2023-05-05 10:30"])
    assert messages(check(tmp_path, frames)) == [
        "contacts.start_date: unparsable date (rule: start_date is date): 1 row, e.g. "
        "contact_id=C2"
    ]


def test_unparsable_timestamp(tmp_path):
    frames = valid_frames()
    frames["activities"]["occurred_at"] = ["2024-03-01 10:00:00", "2024-10-01 25:00:00"]
    violations = check(tmp_path, frames, "csv")
    assert violations == [
        Violation(
            "activities", "occurred_at", "unparsable timestamp", 1, ("A3, 2024-10-01 25:00:00",),
            "occurred_at is timestamp", ("account_id", "occurred_at"),
        )
    ]
    assert messages(violations) == [
        "activities.occurred_at: unparsable timestamp (rule: occurred_at is timestamp): 1 row, "
        "e.g. (account_id, occurred_at)=(A3, 2024-10-01 25:00:00)"
    ]


def test_null_in_non_nullable_column(tmp_path):
    frames = valid_frames()
    frames["subscriptions"].loc[3, "subscription_id"] = None
    frames["subscriptions"].loc[0, "mrr"] = None
    frames["subscriptions"].loc[1, "end_date"] = None  # nullable: fine
    violations = check(tmp_path, frames, "csv")
    assert violations == [
        Violation(
            "subscriptions", "subscription_id", "null value", 1, ("NULL",),
            "subscription_id is not null", SUB,
        ),
        Violation("subscriptions", "mrr", "null value", 1, ("S1",), "mrr is not null", SUB),
    ]
    assert messages(violations)[1] == (
        "subscriptions.mrr: null value (rule: mrr is not null): 1 row, e.g. subscription_id=S1"
    )


def test_duplicate_keys(tmp_path):
    frames = valid_frames()
    frames["subscriptions"].loc[3, "subscription_id"] = "S1"
    violations = check(tmp_path, frames)
    assert violations == [
        Violation(
            "subscriptions", "subscription_id", "duplicate key", 2, ("S1",),
            "subscription_id is unique", SUB,
        )
    ]
    assert messages(violations) == [
        "subscriptions.subscription_id: duplicate key (rule: subscription_id is unique): 2 rows, "
        "e.g. subscription_id=S1"
    ]


def test_orphan_foreign_key(tmp_path):
    frames = valid_frames()
    frames["usage_events"].loc[[1, 2], "account_id"] = ["A9", "A8"]
    violations = check(tmp_path, frames, "csv")
    assert violations == [
        Violation(
            "usage_events", "account_id", "orphan foreign key", 2,
            ("A8, 2024-11-20 09:15:00", "A9, 2024-12-02 11:00:00"),
            "account_id in accounts.account_id", EVENT,
        )
    ]
    assert messages(violations) == [
        "usage_events.account_id: orphan foreign key (rule: account_id in accounts.account_id): "
        "2 rows, e.g. (account_id, event_time)=(A8, 2024-11-20 09:15:00), "
        "(A9, 2024-12-02 11:00:00)"
    ]


def test_orphan_parent_and_own_parent(tmp_path):
    frames = valid_frames()
    frames["accounts"]["parent_account_id"] = [None, "A7", "A3"]
    violations = check(tmp_path, frames)
    assert violations == [
        Violation(
            "accounts", "parent_account_id", "orphan foreign key", 1, ("A2",),
            "parent_account_id in accounts.account_id", ACC,
        ),
        Violation(
            "accounts", "parent_account_id", "references itself", 1, ("A3",),
            "parent_account_id <> account_id", ACC,
        ),
    ]
    assert messages(violations)[1] == (
        "accounts.parent_account_id: references itself (rule: parent_account_id <> account_id): "
        "1 row, e.g. account_id=A3"
    )


def test_below_minimum(tmp_path):
    frames = valid_frames()
    frames["subscriptions"]["mrr"] = [-1.0, -2.0, -0.5, -10.0]
    frames["support_tickets"].loc[0, "csat"] = 0.5
    violations = check(tmp_path, frames)
    assert violations == [
        Violation(
            "subscriptions", "mrr", "negative value", 4, ("S1", "S2", "S3"), "mrr >= 0", SUB
        ),
        Violation(
            "support_tickets", "csat", "below minimum", 1, ("T1",), "csat >= 1", ("ticket_id",)
        ),
    ]
    assert messages(violations) == [
        "subscriptions.mrr: negative value (rule: mrr >= 0): 4 rows, e.g. "
        "subscription_id=S1, S2, S3",
        "support_tickets.csat: below minimum (rule: csat >= 1): 1 row, e.g. ticket_id=T1",
    ]


def test_above_maximum(tmp_path):
    frames = valid_frames()
    frames["subscriptions"].loc[1, "discount_pct"] = 120.0
    frames["nps_responses"].loc[1, "score"] = 11
    assert messages(check(tmp_path, frames, "csv")) == [
        "subscriptions.discount_pct: above maximum (rule: discount_pct <= 100): 1 row, e.g. "
        "subscription_id=S2",
        "nps_responses.score: above maximum (rule: score <= 10): 1 row, e.g. "
        "(account_id, responded_at)=(A3, 2024-09-15 16:00:00)",
    ]


def test_value_outside_the_documented_vocabulary_is_a_warning(tmp_path):
    frames = valid_frames()
    frames["support_tickets"].loc[0, "priority"] = "P1"
    frames["contacts"].loc[0, "role"] = "Champion"  # compared exactly, as features compare it
    violations = check(tmp_path, frames)
    assert violations == [
        Violation(
            "support_tickets", "priority", "undocumented value", 1, ("T1",),
            "priority in (low, normal, high, urgent); counted by no per-value feature",
            ("ticket_id",), "warning",
        ),
        Violation(
            "contacts", "role", "undocumented value", 1, ("C1",),
            "role in (champion, economic buyer, executive sponsor, user, detractor); counted "
            "by no per-value feature", ("contact_id",), "warning",
        ),
    ]
    assert messages(violations)[0] == (
        "support_tickets.priority: undocumented value (rule: priority in (low, normal, high, "
        "urgent); counted by no per-value feature): 1 row, e.g. ticket_id=T1"
    )


# --- the open vocabulary -------------------------------------------------------------------
def test_labels_and_billing_periods_are_the_customers_own(tmp_path):
    frames = valid_frames()
    frames["accounts"]["segment"] = ["partner", "direct", "self-serve"]
    frames["accounts"]["industry"] = ["Agri", "x", "y"]
    frames["subscriptions"]["billing_period"] = ["semiannual", "Quarterly", "6", "multi-year"]
    assert check(tmp_path, frames) == []


def test_empty_label_is_an_error(tmp_path):
    frames = valid_frames()
    frames["accounts"].loc[1, "segment"] = " "
    assert messages(check(tmp_path, frames)) == [
        "accounts.segment: empty label (rule: segment is a non-empty label): 1 row, "
        "e.g. account_id=A2"
    ]


def test_null_owner_region_and_odd_billing_period_are_warnings(tmp_path):
    frames = valid_frames()
    frames["accounts"]["owner"] = None
    frames["accounts"].loc[2, "region"] = None
    frames["subscriptions"].loc[1, "billing_period"] = "fortnightly"
    frames["subscriptions"].loc[2, "billing_period"] = "0"
    raw_dir = write_raw(tmp_path, frames, "csv")
    violations = validate(open_raw(raw_dir))
    assert [(v.level, v.message()) for v in violations] == [
        ("warning", "accounts.region: null values (rule: null region is shown as 'unknown'): "
                    "1 row, e.g. account_id=A3"),
        ("warning", "accounts.owner: null values (rule: null owner is shown as 'unassigned'): "
                    "3 rows, e.g. account_id=A1, A2, A3"),
        ("warning", "subscriptions.billing_period: undocumented value (rule: billing_period in "
                    "(monthly, quarterly, semiannual, annual, multi-year or a number of months); "
                    "its length in months is unknown): 2 rows, e.g. subscription_id=S2, S3"),
    ]
    tables = load_tables(raw_dir)  # warnings only: the data load, nulls stay null
    assert len(tables.warnings) == 3
    assert tables.sql("SELECT count(*) AS n FROM accounts WHERE owner IS NULL").n[0] == 3


def test_order_rules(tmp_path):
    frames = valid_frames()
    frames["subscriptions"].loc[1, "end_date"] = pd.Timestamp("2023-12-01").date()
    frames["subscriptions"].loc[2, "cancelled_at"] = pd.Timestamp("2023-01-01")
    frames["support_tickets"].loc[0, "closed_at"] = pd.Timestamp("2024-04-30 08:00:00")
    violations = check(tmp_path, frames, "csv")
    assert violations == [
        Violation(
            "subscriptions", "end_date", "out of order", 1, ("S2",), "end_date >= start_date", SUB
        ),
        Violation(
            "subscriptions", "cancelled_at", "out of order", 1, ("S3",),
            "cancelled_at >= start_date", SUB,
        ),
        Violation(
            "support_tickets", "closed_at", "out of order", 1, ("T1",),
            "closed_at >= opened_at", ("ticket_id",),
        ),
    ]
    assert messages(violations)[0] == (
        "subscriptions.end_date: out of order (rule: end_date >= start_date): 1 row, e.g. "
        "subscription_id=S2"
    )


# --- reporting -----------------------------------------------------------------------------
def test_all_violations_at_once_in_a_stable_order(tmp_path):
    frames = valid_frames()
    frames["usage_events"].loc[0, "quantity"] = -1
    frames["accounts"].loc[2, "segment"] = ""
    frames["subscriptions"].loc[3, "mrr"] = -5.0
    frames["subscriptions"].loc[0, "seats"] = -1
    frames["subscriptions"].loc[0, "subscription_id"] = "S2"
    frames["contacts"].loc[0, "account_id"] = "A0"
    raw = open_raw(write_raw(tmp_path, frames))
    expected = [
        "accounts.segment: empty label (rule: segment is a non-empty label): 1 row, "
        "e.g. account_id=A3",
        "subscriptions.seats: negative value (rule: seats >= 0): 1 row, e.g. subscription_id=S2",
        "subscriptions.mrr: negative value (rule: mrr >= 0): 1 row, e.g. subscription_id=S4",
        "subscriptions.subscription_id: duplicate key (rule: subscription_id is unique): "
        "2 rows, e.g. subscription_id=S2",
        "usage_events.quantity: negative value (rule: quantity >= 0): 1 row, e.g. "
        "(account_id, event_time)=(A1, 2024-12-01 10:00:00)",
        "contacts.account_id: orphan foreign key (rule: account_id in accounts.account_id): "
        "1 row, e.g. contact_id=C1",
    ]
    assert messages(validate(raw)) == expected
    assert messages(validate(raw)) == expected


def test_failing_load_raises_every_problem_and_writes_nothing(tmp_path):
    frames = valid_frames()
    del frames["usage_events"]
    frames["subscriptions"].loc[2, "discount_pct"] = 101.0
    raw_dir = write_raw(tmp_path / "raw", frames, "csv")
    before = sorted(p.name for p in raw_dir.iterdir())
    with pytest.raises(ContractError) as error:
        load_tables(raw_dir)
    assert error.value.problems == [
        "subscriptions.discount_pct: above maximum (rule: discount_pct <= 100): 1 row, e.g. "
        "subscription_id=S3",
        "usage_events: missing required table",
    ]
    assert sorted(p.name for p in raw_dir.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]
