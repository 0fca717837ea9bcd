"""The feature profile: nulls, constants, and the tables features need."""

from __future__ import annotations

import pandas as pd

from features.build import build_features, feature_groups
from features.profile import profile_snapshot, summary
from features.sources import RawTables
from tests.features.feature_fixture import AS_OF, frames


def test_profile_of_a_required_tables_only_export():
    required = {k: v for k, v in frames().items()
                if k in ("accounts", "subscriptions", "usage_events")}
    tables = RawTables.from_frames(required)
    snap = build_features(tables, AS_OF)  # A1..A4 are active at as_of
    groups = feature_groups()
    profiles = {p.feature: p for p in profile_snapshot(snap, groups, tables.present)}
    tickets = profiles["tickets_90d"]
    assert (tickets.family, tickets.source, tickets.source_present) == (
        "support", "support_tickets", False)
    assert (tickets.null_share, tickets.status) == (1.0, "all null")
    # events_export_30d: 0 for all four accounts (A1's export was on 04-10).
    assert (profiles["events_export_30d"].top_share, profiles["events_export_30d"].status) == (
        1.0, "constant")
    # events_login_30d: A1 3, A4 1, A2 and A3 0 -> most common value 0 for 2 of 4.
    login = profiles["events_login_30d"]
    assert (login.null_share, login.top_share, login.status) == (0.0, 0.5, "")
    assert login.source_present
    line = summary(list(profiles.values()), tables.present)
    assert line.endswith("tables absent: activities, contacts, nps_responses, support_tickets")
    n_null = sum(p.status == "all null" for p in profiles.values())
    assert line.startswith(f"{len(profiles)} features: {n_null} all null")


def test_empty_snapshot_counts_as_all_null():
    profiles = profile_snapshot(pd.DataFrame({"mrr": []}), feature_groups()[:2], frozenset())
    assert all(p.status == "all null" for p in profiles)
