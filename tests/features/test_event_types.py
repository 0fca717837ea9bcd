"""The usage family's event types: chosen from the data, stamped in the snapshots."""

from __future__ import annotations

import pytest

from features.build import build_features, feature_groups
from features.catalogue import FeatureSpec, catalogue_version, event_type_key
from features.event_types import frequent_event_types, stored_spec
from features.pipeline import build_snapshots
from features.settings import Settings
from features.sources import RawTables
from features.store import FeatureStore
from tests.features.feature_fixture import AS_OF, frames
from tests.features.raw_fixture import write_raw


def run_on(tables: RawTables):
    return lambda query: tables.con.execute(query).fetchall()


def test_the_most_frequent_types_sorted_by_name():
    # All events of the fixture: login 3+4+100+7+1 = 115, api_call 10, view_report 2, export 1.
    tables = RawTables.from_frames(frames())
    assert frequent_event_types(run_on(tables), 2) == ("api_call", "login")
    assert frequent_event_types(run_on(tables), 8) == ("api_call", "export", "login",
                                                       "view_report")


def test_no_events_falls_back_to_the_default_list():
    raw = frames()
    raw["usage_events"] = raw["usage_events"].iloc[0:0]
    from features.catalogue import DEFAULT_EVENT_TYPES

    assert frequent_event_types(run_on(RawTables.from_frames(raw)), 8) == DEFAULT_EVENT_TYPES


def test_any_event_type_name_makes_a_feature():
    # "Page View" and "it's" are not SQL identifiers: the names are slugs, the values literals.
    raw = frames()
    raw["usage_events"]["event_type"] = raw["usage_events"]["event_type"].replace(
        {"login": "Page View", "view_report": "it's"})
    spec = FeatureSpec(event_types=("Page View", "it's"))
    snap = build_features(RawTables.from_frames(raw), AS_OF, spec).set_index("account_id")
    assert event_type_key("Page View") == "page_view" and event_type_key("it's") == "it_s"
    assert snap.loc["A1", "events_page_view_30d"] == 3  # 06-30 only (07-01 is as_of)
    assert snap.loc["A1", "events_it_s_30d"] == 2
    assert snap.loc["A1", "feature_breadth_90d"] == 3  # Page View, it's and export


def test_build_chooses_stamps_and_versions_the_list(tmp_path):
    write_raw(tmp_path / "raw", frames(), extracted_at="2025-08-01")
    settings = Settings(data_dir=tmp_path, max_event_types=2)
    _, version = build_snapshots(settings, [AS_OF])
    store = FeatureStore(settings.features_dir)
    assert store.event_types(AS_OF) == ("api_call", "login")
    spec = stored_spec(settings, store)
    assert spec.event_types == ("api_call", "login")
    assert version == catalogue_version(feature_groups(spec)) == store.catalogue_version(AS_OF)
    assert version != catalogue_version(feature_groups(FeatureSpec()))
    snap = store.read(AS_OF)
    typed = [f.name for f in feature_groups(spec)[2].features if "type" in f.description]
    assert typed == [
        "events_api_call_30d", "events_api_call_90d", "events_login_30d", "events_login_90d"]
    assert set(typed) <= set(snap.columns)


def test_the_setting_overrides_the_data(tmp_path):
    write_raw(tmp_path / "raw", frames(), extracted_at="2025-08-01")
    settings = Settings(data_dir=tmp_path, event_types=("export",))
    build_snapshots(settings, [AS_OF])
    assert FeatureStore(settings.features_dir).event_types(AS_OF) == ("export",)
    with pytest.raises(ValueError):
        Settings(data_dir=tmp_path, event_types=())
