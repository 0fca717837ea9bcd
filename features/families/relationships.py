"""Relationship features: who we know at the account, who left, and how we engage.

Two groups of one family: people (``contacts``; a contact's end_date is known only from that
day) and touchpoints (``activities``: QBRs / account reviews, calls, emails, onboarding).
"""

from __future__ import annotations

from features.catalogue import At, Feature, FeatureGroup, FeatureSpec

FAMILY = "relationships"


def contacts_group(spec: FeatureSpec) -> FeatureGroup:
    def f(name: str, description: str, window: int | None = None) -> Feature:
        return Feature(name, description, FAMILY, "contacts", "int64", window, fill=0)

    features = (
        f("champions", "Champions in their role"),
        f("champion_departed_90d", "Champions who left their role in the last 90 days", 90),
        f("executive_sponsor_present", "An executive sponsor is in place (1 = yes)"),
        f("economic_buyer_present", "An economic buyer is known (1 = yes)"),
        f("detractor_contacts", "Contacts known as detractors"),
        f("contacts_in_role", "Contacts in their role"),
    )

    def cte(s: At) -> str:
        at = s.ts()
        in_role = f"(c.end_date IS NULL OR c.end_date >= {s.day()})"

        def count_role(role: str) -> str:
            return f"SUM(CASE WHEN {in_role} AND c.role = '{role}' THEN 1 ELSE 0 END)"

        return f"""
SELECT {s.key()}c.account_id,
  {count_role("champion")} AS champions,
  SUM(CASE WHEN c.role = 'champion' AND c.end_date >= {s.day(90)} AND c.end_date < {s.day()}
    THEN 1 ELSE 0 END) AS champion_departed_90d,
  CASE WHEN {count_role("executive sponsor")} > 0 THEN 1 ELSE 0 END AS executive_sponsor_present,
  CASE WHEN {count_role("economic buyer")} > 0 THEN 1 ELSE 0 END AS economic_buyer_present,
  {count_role("detractor")} AS detractor_contacts,
  SUM(CASE WHEN {in_role} THEN 1 ELSE 0 END) AS contacts_in_role
FROM contacts c{s.dates()} WHERE c.start_date < {at} GROUP BY {s.key()}c.account_id
"""

    return FeatureGroup("contacts", FAMILY, "contacts", features, cte)


def activities_group(spec: FeatureSpec) -> FeatureGroup:
    touch_windows = spec.windows(at_least=30, at_most=90)

    def f(name: str, description: str, window: int | None, fill=0) -> Feature:
        return Feature(name, description, FAMILY, "activities", "int64", window, fill=fill)

    features = (
        f("days_since_last_qbr", "Days since the last account review meeting (QBR)", None, None),
        f("qbrs_180d", "Account review meetings (QBRs) in the last 180 days", 180),
        *[f(f"touches_{w}d", f"Calls, emails and meetings with the account in the last {w} days",
            w) for w in touch_windows],
        f("onboarding_sessions_90d", "Onboarding sessions in the last 90 days", 90),
    )

    def cte(s: At) -> str:
        touches = ",\n  ".join(
            f"SUM(CASE WHEN a.occurred_at >= {s.ts(w)} THEN 1 ELSE 0 END) AS touches_{w}d"
            for w in touch_windows
        )
        return f"""
SELECT {s.key()}a.account_id,
  date_diff('day', CAST(MAX(CASE WHEN a.type = 'qbr' THEN a.occurred_at END) AS DATE), {s.day()})
    AS days_since_last_qbr,
  SUM(CASE WHEN a.type = 'qbr' AND a.occurred_at >= {s.ts(180)} THEN 1 ELSE 0 END) AS qbrs_180d,
  {touches},
  SUM(CASE WHEN a.type = 'onboarding session' AND a.occurred_at >= {s.ts(90)} THEN 1 ELSE 0 END)
    AS onboarding_sessions_90d
FROM activities a{s.dates()}
WHERE a.occurred_at < {s.ts()} AND (a.occurred_at >= {s.ts(180)} OR a.type = 'qbr')
GROUP BY {s.key()}a.account_id
"""

    return FeatureGroup("activities", FAMILY, "activities", features, cte)
