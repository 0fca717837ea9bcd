"""The request examples the API documents, built from the feature catalogue.

Every published example must be accepted by the service (a test posts each one), so the
feature records are made from the catalogue's own names and types, not written by hand: a
renamed or added feature changes the example with it. Values are one demo account's
(A0000010 of the generated book, mid-market); a feature without a value here gets its
declared fill (counts: 0) or, lacking one, is left out (a missing value). Categorical features
appear only where the data contract fixes their values (`segment`): others (industry, region,
plan) depend on the data a model was trained on and would be unknown categories elsewhere.
`held_products` is left empty for the same reason (product names are the data's).
"""

from __future__ import annotations

from typing import Any

DEMO_ACCOUNT: dict[str, float] = {
    "account_age_days": 2681, "mrr": 4161, "arr": 49932, "mrr_change_30d": 0,
    "mrr_change_90d": 0, "mrr_change_180d": 0, "mrr_change_90d_pct": 0,
    "mrr_change_180d_pct": 0, "products_held": 2, "seats": 84, "discount_pct": 5,
    "days_to_renewal": 276, "contract_term_months": 24, "annual_billing_share": 1,
    "auto_renew_off": 1, "cancellation_notice": 0, "tenure_days": 2646, "events_7d": 31,
    "events_30d": 102, "events_90d": 291, "events_180d": 608, "events_login_30d": 22,
    "events_login_90d": 66, "events_view_report_30d": 21, "events_view_report_90d": 67,
    "events_create_report_30d": 6, "events_create_report_90d": 19, "events_export_30d": 1,
    "events_export_90d": 2, "events_api_call_30d": 52, "events_api_call_90d": 137,
    "usage_trend_30d": 0.05, "days_since_last_event": 2, "active_users_7d": 9,
    "active_users_30d": 12, "active_users_90d": 16, "active_users_change_30d": -4,
    "feature_breadth_30d": 4, "feature_breadth_90d": 5, "tickets_30d": 1, "tickets_90d": 1,
    "tickets_180d": 3, "escalations_180d": 1, "hours_to_resolve_90d": 9.75, "csat_180d": 4,
    "nps_last": 8, "nps_180d": 8.5, "nps_trend_180d": 0.167, "nps_responses_180d": 2,
    "nps_detractors_180d": 0, "detractor_flag": 0, "champions": 1, "champion_departed_90d": 1,
    "executive_sponsor_present": 0, "economic_buyer_present": 1, "detractor_contacts": 0,
    "contacts_in_role": 2, "days_since_last_qbr": 102, "qbrs_180d": 1, "touches_30d": 2,
    "touches_90d": 7, "onboarding_sessions_90d": 0, "has_parent": 0, "child_accounts": 0,
    "children_arr": 0, "seat_utilisation_30d": 0.14, "seat_utilisation_90d": 0.19,
    "events_per_seat_90d": 3.464, "events_per_active_user_30d": 8.5,
}


def feature_record() -> dict[str, Any]:
    """One account's features, named and typed as the default catalogue declares them."""
    from features.build import feature_groups
    from features.catalogue import FeatureSpec, all_features
    from features.contract import SEGMENTS

    record: dict[str, Any] = {"account_id": "CRM-0042"}
    for feature in all_features(feature_groups(FeatureSpec())):
        if feature.name == "segment":
            record["segment"] = SEGMENTS[1]
            continue
        value = DEMO_ACCOUNT.get(feature.name, feature.fill)
        if value is None or feature.dtype == "string":
            continue
        record[feature.name] = float(value) if feature.dtype == "float64" else int(value)
    record["held_products"] = []
    return record


def score_request_examples(schema: dict[str, Any], _model: type) -> None:
    """pydantic's `json_schema_extra` hook: the examples, made when the schema is."""
    record = feature_record()
    columns = list(record)
    second = {**record, "account_id": "CRM-0043", "arr": 12000.0, "mrr": 1000.0, "seats": 8,
              "nps_last": None}
    schema["examples"] = [
        {"account_ids": ["A0000001", "A0000002"]},
        {"features": [record], "tasks": ["churn"], "reasons": False},
        {"columns": columns, "data": [[record[c] for c in columns],
                                      [second[c] for c in columns]],
         "tasks": ["churn"], "reasons": False},
    ]
