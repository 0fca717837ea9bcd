"""The catalogue is the single source: declarations match queries, docs, and Spark's dialect."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import sqlglot

from features.build import SnapshotError, build_features, check_groups, feature_groups
from features.catalogue import Cutoff, FeatureSpec, all_features, describe_markdown
from features.sources import RawTables
from tests.features.feature_fixture import AS_OF, frames

DOCS = Path(__file__).resolve().parents[2] / "docs" / "features.md"


def test_names_are_unique_and_described():
    features = all_features(feature_groups())
    names = [f.name for f in features]
    assert len(names) == len(set(names))
    assert all(f.description and f.description[0].isupper() for f in features)


def test_windows_follow_the_settings():
    names = {f.name for f in all_features(feature_groups(FeatureSpec(windows_days=(14, 30, 90))))}
    assert {"events_14d", "events_30d", "events_90d"} <= names
    assert "events_7d" not in names and "events_180d" not in names


def test_a_group_returning_undeclared_columns_is_refused():
    groups = feature_groups()
    usage = next(g for g in groups if g.name == "usage")
    broken = dataclasses.replace(usage, features=usage.features[:-1])
    tables = RawTables.from_frames(frames())
    expected = r"feature group 'usage' returns \['feature_breadth_90d'\]"
    with pytest.raises(SnapshotError, match=expected):
        check_groups(tables, [broken], AS_OF)


def test_committed_docs_are_generated_from_the_catalogue():
    assert DOCS.read_text() == describe_markdown(feature_groups()), (
        "docs/features.md is stale: run `propensity features describe > docs/features.md`"
    )


@pytest.mark.parametrize("group", feature_groups(), ids=lambda g: g.name)
def test_every_query_transpiles_to_spark(group):
    """Feature SQL is written once; SQLGlot must carry it to Spark's dialect."""
    if group.cte is None:
        return
    spark_sql = sqlglot.transpile(group.cte(Cutoff(AS_OF)), read="duckdb", write="spark")[0]
    assert "SELECT" in spark_sql
    if "date_diff('day'" in group.cte(Cutoff(AS_OF)):
        assert "DATEDIFF" in spark_sql.upper()


def test_feature_types_are_stable_across_snapshots():
    tables = RawTables.from_frames(frames())
    early = build_features(tables, AS_OF.replace(month=3))
    late = build_features(tables, AS_OF)
    assert list(early.columns) == list(late.columns)
