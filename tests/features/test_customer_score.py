"""The customer's own health score: the optional health_scores table, validated like the others,
read point-in-time, and a feature family only when the setting asks and the data have scores."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pyarrow as pa

from features.build import build_features, feature_groups
from features.catalogue import FeatureSpec, catalogue_version
from features.event_types import chosen_spec, stored_spec
from features.families.customer_score import SCORE, latest_scores
from features.settings import Settings
from features.sources import RawTables, open_raw
from features.store import FeatureStore
from features.validation import Violation, validate
from tests.features.raw_fixture import valid_frames, write_raw

KEY = ("account_id", "scored_at")


def test_bad_rows_are_reported_like_any_table(tmp_path):
    frames = valid_frames()
    scores = frames["health_scores"]
    scores.loc[0, "account_id"] = "A9"  # no such account
    scores.loc[2, "scored_at"] = pd.Timestamp("2025-01-01 00:00:00")  # at the extraction
    scores.loc[1, "label"] = ""
    found = validate(open_raw(write_raw(tmp_path, frames)))
    assert found == [
        Violation("health_scores", "account_id", "orphan foreign key", 1,
                  ("A9, 2024-11-30 18:00:00",), "account_id in accounts.account_id", KEY),
        Violation("health_scores", "scored_at", "after extraction time", 1,
                  ("A3, 2025-01-01 00:00:00",), "scored_at < 2025-01-01 00:00:00", KEY),
        Violation("health_scores", "label", "empty label", 1, ("A3, 2024-11-30 18:00:00",),
                  "label is a non-empty label", KEY),
    ]


def test_two_scores_of_one_account_at_one_moment_are_a_duplicate_key(tmp_path):
    frames = valid_frames()
    frames["health_scores"].loc[2, "scored_at"] = pd.Timestamp("2024-11-30 18:00:00")
    found = validate(open_raw(write_raw(tmp_path, frames)))
    assert [(v.table, v.rule, v.count) for v in found] == [("health_scores", "duplicate key", 2)]


def _tables() -> RawTables:
    return RawTables.from_frames(valid_frames())


def test_latest_score_strictly_before_as_of():
    rows = pd.DataFrame({
        "account_id": ["A1", "A3", "A3", "A3", "A2"],
        "as_of": [pd.Timestamp(t) for t in ("2024-12-01", "2024-11-30 18:00", "2024-12-01",
                                            "2025-01-01", "2025-01-01")],
    }, index=[10, 11, 12, 13, 14])
    got = latest_scores(_tables(), rows)
    # A3 scored 31 at 2024-11-30 18:00 and 28 at 2024-12-31 18:00: a score stamped exactly at
    # as_of is not known yet; A2 has never been scored
    pd.testing.assert_series_equal(
        got, pd.Series([72.5, float("nan"), 31.0, 28.0, float("nan")], index=rows.index,
                       name=SCORE))


def test_the_family_is_only_in_the_catalogue_when_asked_for():
    plain = feature_groups(FeatureSpec())
    with_score = feature_groups(FeatureSpec(customer_score=True))
    assert [g.name for g in with_score] == [g.name for g in plain] + ["customer_score"]
    # the version of a catalogue without it is what it was before the family existed
    assert catalogue_version(plain) != catalogue_version(with_score)
    assert "customer_score" not in [g.name for g in plain]


def test_the_setting_adds_the_family_only_when_the_data_have_scores():
    tables = _tables()
    run = lambda query: tables.con.execute(query).fetchall()  # noqa: E731
    assert not chosen_spec(Settings(), run).customer_score  # off by default
    assert chosen_spec(Settings(customer_score_as_feature=True), run).customer_score
    frames = valid_frames()
    del frames["health_scores"]
    no_table = RawTables.from_frames(frames)
    assert not chosen_spec(Settings(customer_score_as_feature=True),
                           lambda q: no_table.con.execute(q).fetchall()).customer_score


def test_feature_values_and_the_stored_spec(tmp_path):
    spec = FeatureSpec(event_types=("login", "report", "export"), customer_score=True)
    snapshot = build_features(_tables(), date(2025, 1, 1), spec).set_index("account_id")
    assert snapshot.loc["A3", SCORE] == 28.0
    assert snapshot.loc["A3", "customer_health_score_age_days"] == 1  # 2024-12-31 -> 01-01
    assert snapshot.loc["A1", SCORE] == 72.5
    assert snapshot.loc["A1", "customer_health_score_age_days"] == 32
    before = build_features(_tables(), date(2024, 11, 1), spec)
    assert before[SCORE].isna().all() and len(before) == 2  # nobody scored yet
    # training and serving read back the catalogue the snapshot was built with
    store = FeatureStore(tmp_path)
    groups = feature_groups(spec)
    store.write(date(2025, 1, 1), pa.Table.from_pandas(snapshot.reset_index()),
                catalogue_version(groups), spec.event_types)
    assert stored_spec(Settings(), store).customer_score  # the setting is off; the data say on
    assert catalogue_version(feature_groups(stored_spec(Settings(), store))) == \
        catalogue_version(groups)
