"""Firmographic features from the account record."""

from __future__ import annotations

from features.catalogue import At, Feature, FeatureGroup, FeatureSpec

FAMILY = "account"
SOURCE = "accounts"


def group(spec: FeatureSpec) -> FeatureGroup:
    features = (
        Feature("segment", "Sales segment (the data's own labels)", FAMILY, SOURCE, "string"),
        Feature("industry", "Industry", FAMILY, SOURCE, "string"),
        Feature("region", "Sales region", FAMILY, SOURCE, "string"),
        Feature("account_age_days", "Days since the account was created", FAMILY, SOURCE,
                "int64"),
    )

    def cte(s: At) -> str:
        return f"""
SELECT {s.key()}a.account_id, a.segment, a.industry, a.region,
  date_diff('day', CAST(a.created_at AS DATE), {s.day()}) AS account_age_days
FROM accounts a{s.dates()} WHERE a.created_at < {s.ts()}
"""

    return FeatureGroup("account", FAMILY, SOURCE, features, cte)
