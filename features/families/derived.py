"""Ratios across families, computed from other features of the same snapshot."""

from __future__ import annotations

from features.catalogue import Feature, FeatureGroup, FeatureSpec


def group(spec: FeatureSpec) -> FeatureGroup:
    features = [
        Feature(
            "seat_utilisation_30d", "Share of paid seats used in the last 30 days",
            "revenue", "subscriptions+usage_events", "float64", 30,
            expr="CASE WHEN seats > 0 THEN active_users_30d / CAST(seats AS DOUBLE) END",
        ),
    ]
    features.append(Feature(
        "seat_utilisation_90d", "Share of paid seats used in the last 90 days",
        "revenue", "subscriptions+usage_events", "float64", 90,
        expr="CASE WHEN seats > 0 THEN active_users_90d / CAST(seats AS DOUBLE) END",
    ))
    if 90 in spec.windows_days:
        features.append(Feature(
            "events_per_seat_90d", "Product events per paid seat in the last 90 days",
            "usage", "subscriptions+usage_events", "float64", 90,
            expr="CASE WHEN seats > 0 THEN events_90d / CAST(seats AS DOUBLE) END",
        ))
    if 30 in spec.windows_days:
        features.append(Feature(
            "events_per_active_user_30d", "Product events per active user in the last 30 days",
            "usage", "usage_events", "float64", 30,
            expr="CASE WHEN active_users_30d > 0 "
                 "THEN events_30d / CAST(active_users_30d AS DOUBLE) END",
        ))
    return FeatureGroup("derived", "derived", "subscriptions+usage_events", tuple(features), None)
