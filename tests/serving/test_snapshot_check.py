"""The snapshot rules on hand-made three-row frames: what a model was trained on against what
a snapshot holds."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from serving.snapshot_check import (
    Problem,
    SnapshotRefused,
    check_accounts_drop,
    check_catalogue,
    check_features,
    check_snapshot,
)

TABLE = "feature snapshot as_of=2025-05-01"
SCHEMA = {"numeric": ["mrr", "events_30d"], "categorical": {"segment": ["enterprise", "smb"]}}


def snapshot(**changes) -> pd.DataFrame:
    frame = pd.DataFrame({
        "account_id": ["a1", "a2", "a3"],
        "mrr": [100.0, None, 250.5],
        "events_30d": pd.array([3, None, 0], dtype="Int64"),
        "segment": ["smb", "enterprise", None],
    })
    return frame.assign(**changes)


def test_a_snapshot_with_every_feature_in_its_type_passes():
    assert check_features(TABLE, snapshot(), "churn", SCHEMA) == []
    boolean = snapshot(events_30d=[True, False, True])  # bool is numeric to the booster
    assert check_features(TABLE, boolean, "churn", SCHEMA) == []
    category = snapshot(segment=pd.Categorical(["smb", "smb", None]))
    assert check_features(TABLE, category, "churn", SCHEMA) == []


def test_a_missing_feature_is_named():
    problems = check_features(TABLE, snapshot().drop(columns=["events_30d"]), "churn", SCHEMA)
    assert problems == [Problem(TABLE, "events_30d", "missing_feature",
                                "the churn model was trained on it; the snapshot lacks it")]


def test_a_numeric_feature_stored_as_text_is_refused():
    problems = check_features(TABLE, snapshot(mrr=["100.0", None, "250.5"]), "churn", SCHEMA)
    assert problems == [Problem(TABLE, "mrr", "wrong_type",
                                "the churn model was trained on a numeric column; the snapshot "
                                "stores object")]


def test_a_categorical_feature_stored_as_numbers_is_refused():
    problems = check_features(TABLE, snapshot(segment=[1.0, 2.0, 3.0]), "churn", SCHEMA)
    assert [(p.column, p.rule) for p in problems] == [("segment", "wrong_type")]


def test_the_product_column_of_cross_sell_is_not_read_from_the_snapshot():
    schema = {"numeric": ["mrr"], "categorical": {"candidate_product": ["analytics"]}}
    assert check_features(TABLE, snapshot(), "cross-sell", schema) == []


def test_the_catalogue_version_must_match_the_model():
    assert check_catalogue(TABLE, "abc123", "churn", "abc123") == []
    [other] = check_catalogue(TABLE, "def456", "churn", "abc123")
    assert (other.column, other.rule) == (None, "catalogue_version")
    assert other.detail.startswith("the churn model was trained on feature catalogue abc123; "
                                   "the snapshot was built by def456")
    [unstamped] = check_catalogue(TABLE, None, "churn", "abc123")
    assert "the snapshot carries no catalogue version" in unstamped.detail


@pytest.mark.parametrize(("accounts", "serving", "force", "refused"), [
    (150, 300, False, False),  # exactly half: allowed
    (149, 300, False, True),   # more than half gone
    (149, 300, True, False),   # the admin forces it
    (10, None, False, False),  # nothing serving yet: nothing to compare with
    (400, 300, False, False),  # growth is fine
])
def test_a_large_drop_in_accounts_is_refused_unless_forced(accounts, serving, force, refused):
    problems = check_accounts_drop(TABLE, accounts, serving, 0.5, force)
    assert bool(problems) is refused
    if refused:
        assert problems[0].rule == "accounts_drop"
        assert problems[0].detail.startswith("149 accounts where 300 are serving (a drop of 50%,")


def test_check_snapshot_reports_each_broken_rule_once():
    models = {"churn": (SCHEMA, "abc123"), "upsell": (SCHEMA, "abc123")}
    empty = snapshot().iloc[:0].drop(columns=["mrr"])
    problems = check_snapshot(date(2025, 5, 1), empty, "def456", models)
    assert [(p.table, p.column, p.rule) for p in problems] == [
        (TABLE, None, "empty"), (TABLE, None, "catalogue_version"),
        (TABLE, "mrr", "missing_feature")]
    assert check_snapshot(date(2025, 5, 1), snapshot(), "abc123", models) == []


def test_the_refusal_names_table_column_and_rule():
    error = SnapshotRefused([Problem(TABLE, "mrr", "wrong_type", "stored as text")])
    assert str(error) == "feature snapshot as_of=2025-05-01, column mrr: wrong_type: stored as text"
