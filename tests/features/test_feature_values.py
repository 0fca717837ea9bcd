"""Exact feature values on the hand-made fixture (worked out by hand in the comments)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from features.build import build_features
from features.sources import RawTables
from tests.features.feature_fixture import AS_OF, feature_columns, frames


@pytest.fixture(scope="module")
def snap() -> pd.DataFrame:
    return build_features(RawTables.from_frames(frames()), AS_OF).set_index("account_id")


def row(snap: pd.DataFrame, account: str) -> dict:
    return snap.loc[account].to_dict()


def assert_values(actual: dict, expected: dict) -> None:
    for name, want in expected.items():
        got = actual[name]
        if want is None:
            assert got is None or pd.isna(got), f"{name}: expected null, got {got!r}"
        elif isinstance(want, float):
            assert got == pytest.approx(want, abs=1e-6), f"{name}: {got!r} != {want!r}"
        else:
            assert got == want, f"{name}: {got!r} != {want!r}"


def test_population_is_accounts_with_a_term_in_force(snap):
    # A5 churned for good, A6's first term starts on as_of (not yet known); A2's term ends on
    # as_of, so it is still in force on the day before; A4 came back in June.
    assert list(snap.index) == ["A1", "A2", "A3", "A4"]
    assert list(snap.columns) == ["as_of", *feature_columns()]
    assert (snap["as_of"] == pd.Timestamp(AS_OF).date()).all()


def test_revenue_and_contract(snap):
    # A1 at as_of: S2 (600, 12 seats, monthly) + S3 (100, 5 seats, annual to 2026-06-10).
    # 30 days before (06-01): S2 only = 600; 90 and 180 days before: S1 = 500 (its
    # cancellation on 05-15 was in the future then).
    assert_values(row(snap, "A1"), {
        "mrr": 700.0, "arr": 8400.0,
        "mrr_change_30d": 100.0, "mrr_change_90d": 200.0, "mrr_change_180d": 200.0,
        "mrr_change_90d_pct": 0.4, "mrr_change_180d_pct": 0.4,
        "products_held": 2, "seats": 17,
        "discount_pct": (0 * 600 + 10 * 100) / 700,
        "days_to_renewal": 344,  # 2025-07-01 -> 2026-06-10
        "contract_term_months": 12, "annual_billing_share": 100 / 700,
        "auto_renew_off": 0, "cancellation_notice": 0,
        "tenure_days": 516,  # since 2024-02-01
        "plan_tier": "pro",
    })
    # A2: the term ending on as_of is in force, its renewal starting on as_of is not known yet.
    assert_values(row(snap, "A2"), {
        "mrr": 10000.0, "days_to_renewal": 0, "mrr_change_90d": 0.0, "plan_tier": "enterprise",
        "tenure_days": 365, "discount_pct": 20.0,
    })
    # A3 gave notice on 06-20 on an annual term that does not auto-renew; new within 180 days.
    assert_values(row(snap, "A3"), {
        "mrr": 2000.0, "cancellation_notice": 1, "auto_renew_off": 1, "days_to_renewal": 274,
        "mrr_change_180d": 2000.0, "mrr_change_180d_pct": None, "mrr_change_90d": 0.0,
    })
    # A4 was cancelled on 03-10 and came back on 06-15: 0 at 04-02 and 06-01, 150 at 01-02.
    assert_values(row(snap, "A4"), {
        "mrr": 150.0, "mrr_change_30d": 150.0, "mrr_change_90d": 150.0,
        "mrr_change_90d_pct": None, "mrr_change_180d": 0.0, "mrr_change_180d_pct": 0.0,
        "days_to_renewal": None, "contract_term_months": 1, "annual_billing_share": 0.0,
        "tenure_days": 487,  # since the first term, 2024-03-01, not the reactivation
    })


def test_account_attributes(snap):
    assert_values(row(snap, "A1"), {"segment": "SMB", "industry": "software", "region": "EMEA",
                                    "account_age_days": 538})
    assert_values(row(snap, "A3"), {"segment": "mid-market", "account_age_days": 103})


def test_usage(snap):
    # Windows end at as_of (exclusive): 7 d from 06-24, 30 d from 06-01, 90 d from 04-02,
    # 180 d from 01-02. The 07-01 event (at as_of) and the 2024-12-31 event are outside.
    a1 = row(snap, "A1")
    assert_values(a1, {
        "events_7d": 3, "events_30d": 5, "events_90d": 10, "events_180d": 20,
        "events_login_30d": 3, "events_login_90d": 7, "events_view_report_30d": 2,
        "events_export_30d": 0, "events_export_90d": 1, "events_api_call_90d": 0,
        "usage_trend_30d": 2.0,  # (5 / 30) / ((10 - 5) / 60)
        "days_since_last_event": 1,
        "active_users_7d": 1, "active_users_30d": 1, "active_users_90d": 2,
        # u1 active in the last 30 d; u2 in the 30 d before (05-20): 1 - 1.
        "active_users_change_30d": 0,
        "feature_breadth_30d": 2, "feature_breadth_90d": 3,
        "seat_utilisation_30d": 1 / 17, "events_per_active_user_30d": 5.0,
        "seat_utilisation_90d": 2 / 17, "events_per_seat_90d": 10 / 17,
    })
    # A2 has no usage at all: counts are 0, the trend is unknown, recency is capped.
    assert_values(row(snap, "A2"), {
        "events_30d": 0, "usage_trend_30d": None, "days_since_last_event": 180,
        "active_users_30d": 0, "seat_utilisation_30d": 0.0, "events_per_active_user_30d": None,
        "seat_utilisation_90d": 0.0, "events_per_seat_90d": 0.0,
    })


def test_support(snap):
    # K1 (06-25, high, escalated, closed after 36 h, CSAT 4); K2 (04-15, closed after as_of:
    # still open, its CSAT unknown); K3 (01-10, escalated, closed 01-11, CSAT 5); K4 at as_of.
    assert_values(row(snap, "A1"), {
        "tickets_30d": 1, "tickets_90d": 2, "tickets_180d": 3,
        "escalations_30d": 1, "escalations_90d": 1, "escalations_180d": 2,
        "urgent_tickets_90d": 1, "open_tickets": 1,
        "hours_to_resolve_90d": 36.0, "csat_180d": 4.5,
    })
    assert_values(row(snap, "A2"), {"tickets_90d": 0, "csat_180d": None,
                                    "hours_to_resolve_90d": None})


def test_voice_of_customer(snap):
    # Answers 9 (2024-12-01, the prior 180 d), 6 (03-01), 8 (06-01); the 0 on as_of is unknown.
    assert_values(row(snap, "A1"), {
        "nps_last": 8.0, "nps_180d": 7.0, "nps_trend_180d": -2.0,
        "nps_responses_180d": 2, "nps_detractors_180d": 1, "detractor_flag": 0,
    })
    assert_values(row(snap, "A2"), {"nps_last": None, "detractor_flag": None,
                                    "nps_responses_180d": 0})


def test_relationships(snap):
    # C1 champion left 05-01; C2 champion since 05-01; C3 sponsor leaves on as_of (unknown yet);
    # C4 detractor since 06-01; C5 starts on as_of (unknown yet).
    assert_values(row(snap, "A1"), {
        "champions": 1, "champion_departed_90d": 1, "executive_sponsor_present": 1,
        "economic_buyer_present": 0, "detractor_contacts": 1, "contacts_in_role": 3,
        "days_since_last_qbr": 82,  # 2025-04-10; the QBR on as_of has not happened yet
        "qbrs_180d": 2, "touches_30d": 2, "touches_90d": 4, "onboarding_sessions_90d": 1,
    })
    assert_values(row(snap, "A2"), {"champions": 0, "days_since_last_qbr": None, "qbrs_180d": 0})


def test_hierarchy(snap):
    assert_values(row(snap, "A2"), {"has_parent": 0, "parent_arr": None, "sibling_arr": None,
                                    "child_accounts": 1, "children_arr": 24000.0})
    assert_values(row(snap, "A3"), {"has_parent": 1, "parent_arr": 120000.0, "sibling_arr": 0.0,
                                    "child_accounts": 0, "children_arr": 0.0})


def test_missing_optional_tables_give_null_features():
    required = {k: v for k, v in frames().items()
                if k in ("accounts", "subscriptions", "usage_events")}
    snap = build_features(RawTables.from_frames(required), AS_OF).set_index("account_id")
    for name in ("tickets_90d", "csat_180d", "nps_last", "nps_responses_180d", "champions",
                 "days_since_last_qbr", "touches_30d"):
        assert snap[name].isna().all(), name
    assert snap.loc["A1", "events_30d"] == 5
    assert math.isclose(snap.loc["A1", "mrr"], 700.0)


def test_longer_windows_from_settings():
    # With a 365-day window the 2024-12-31 event (u4, 7 events) counts too.
    from features.catalogue import FeatureSpec

    spec = FeatureSpec(windows_days=(7, 30, 90, 180, 365))
    snap = build_features(RawTables.from_frames(frames()), AS_OF, spec).set_index("account_id")
    assert snap.loc["A1", "events_180d"] == 20
    assert snap.loc["A1", "events_365d"] == 27
    assert snap.loc["A1", "days_since_last_event"] == 1
    assert snap.loc["A2", "days_since_last_event"] == 365


def test_billing_share_reads_any_documented_period_or_months():
    # A1's terms at as_of: S2 600 (period "6" months), S3 100 ("Multi-Year"): both known,
    # only S3 is billed yearly or less often -> 100 / 700. A2's S4 10000 is "biweekly"
    # (undocumented): no known period -> null. A3's S6 is "semiannual": 6 months -> 0.
    raw = frames()
    periods = {"S2": "6", "S3": " Multi-Year", "S4": "biweekly", "S6": "semiannual"}
    subs = raw["subscriptions"]
    subs["billing_period"] = [periods.get(s, p) for s, p in
                              zip(subs["subscription_id"], subs["billing_period"], strict=True)]
    snap = build_features(RawTables.from_frames(raw), AS_OF).set_index("account_id")
    assert snap.loc["A1", "annual_billing_share"] == pytest.approx(100 / 700)
    assert pd.isna(snap.loc["A2", "annual_billing_share"])
    assert snap.loc["A3", "annual_billing_share"] == 0.0
