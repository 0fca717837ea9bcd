"""A hand-made book of accounts whose features at AS_OF are worked out by hand in the tests.

A1 SMB: monthly core term changed seats mid-May (old row cancelled, new row), analytics
    add-on started in June; busy usage, tickets, NPS, contacts and activities.
A2 enterprise parent of A3: annual term ending exactly on AS_OF, renewal (downgrade) starting
    on AS_OF (not yet known); no usage or support at all.
A3 mid-market child of A2, created mid-window; gave notice on its annual term.
A4 SMB churned in March, reactivated in June.
A5 SMB churned for good; A6 starts on AS_OF (not yet a customer).
"""

from __future__ import annotations

from datetime import date

import pandas as pd

AS_OF = date(2025, 7, 1)
T = pd.Timestamp


def _frame(columns: list[str], rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def frames() -> dict[str, pd.DataFrame]:
    accounts = _frame(
        ["account_id", "name", "parent_account_id", "segment", "industry", "region", "owner",
         "created_at"],
        [
            ("A1", "Acme", None, "SMB", "software", "EMEA", "alice", T("2024-01-10")),
            ("A2", "Globex", None, "enterprise", "finance", "NA", "bob", T("2023-06-01")),
            ("A3", "Globex DE", "A2", "mid-market", "finance", "EMEA", "bob", T("2025-03-20")),
            ("A4", "Initech", None, "SMB", "retail", "NA", "alice", T("2024-02-15")),
            ("A5", "Umbrella", None, "SMB", "health", "APAC", "carol", T("2024-01-01")),
            ("A6", "Hooli", None, "SMB", "software", "NA", "carol", T("2025-06-20")),
        ],
    )
    sub_cols = ["subscription_id", "account_id", "product", "plan", "seats", "mrr", "start_date",
                "end_date", "cancelled_at", "billing_period", "auto_renew", "discount_pct"]
    D = date
    subscriptions = _frame(sub_cols, [
        ("S1", "A1", "core", "pro", 10, 500.0, D(2024, 2, 1), None, T("2025-05-15 10:00"),
         "monthly", True, 0.0),
        ("S2", "A1", "core", "pro", 12, 600.0, D(2025, 5, 15), None, None, "monthly", True, 0.0),
        ("S3", "A1", "analytics", "starter", 5, 100.0, D(2025, 6, 10), D(2026, 6, 10), None,
         "annual", True, 10.0),
        ("S4", "A2", "core", "enterprise", 100, 10000.0, D(2024, 7, 1), D(2025, 7, 1), None,
         "annual", True, 20.0),
        ("S5", "A2", "core", "enterprise", 80, 8000.0, D(2025, 7, 1), D(2026, 7, 1), None,
         "annual", True, 20.0),
        ("S6", "A3", "core", "pro", 20, 2000.0, D(2025, 4, 1), D(2026, 4, 1),
         T("2025-06-20 09:00"), "annual", False, 5.0),
        ("S7", "A4", "core", "starter", 3, 150.0, D(2024, 3, 1), None, T("2025-03-10"),
         "monthly", True, 0.0),
        ("S8", "A4", "core", "starter", 3, 150.0, D(2025, 6, 15), None, None, "monthly", True,
         0.0),
        ("S9", "A5", "core", "starter", 2, 100.0, D(2024, 1, 1), None, T("2025-02-01"),
         "monthly", True, 0.0),
        ("S10", "A6", "core", "starter", 2, 100.0, D(2025, 7, 1), None, None, "monthly", True,
         0.0),
    ])
    usage_events = _frame(["account_id", "user_id", "event_time", "event_type", "quantity"], [
        ("A1", "u1", T("2025-06-30 10:00"), "login", 3),
        ("A1", "u1", T("2025-06-20"), "view_report", 2),
        ("A1", "u2", T("2025-05-20"), "login", 4),
        ("A1", "u2", T("2025-04-10"), "export", 1),
        ("A1", "u3", T("2025-02-01"), "api_call", 10),
        ("A1", "u1", T("2025-07-01"), "login", 100),  # at as_of: not yet happened
        ("A1", "u4", T("2024-12-31"), "login", 7),  # older than the longest window
        ("A4", "u9", T("2025-06-29"), "login", 1),
    ])
    support_tickets = _frame(
        ["ticket_id", "account_id", "opened_at", "closed_at", "priority", "escalated", "csat"],
        [
            ("K1", "A1", T("2025-06-25"), T("2025-06-26 12:00"), "high", True, 4.0),
            ("K2", "A1", T("2025-04-15"), T("2025-07-02"), "low", False, 2.0),
            ("K3", "A1", T("2025-01-10"), T("2025-01-11"), "normal", True, 5.0),
            ("K4", "A1", T("2025-07-01"), None, "urgent", True, None),
        ],
    )
    nps_responses = _frame(["account_id", "contact_id", "responded_at", "score"], [
        ("A1", "C2", T("2024-12-01"), 9),
        ("A1", "C2", T("2025-03-01"), 6),
        ("A1", "C3", T("2025-06-01"), 8),
        ("A1", "C3", T("2025-07-01"), 0),
    ])
    contacts = _frame(["contact_id", "account_id", "role", "start_date", "end_date"], [
        ("C1", "A1", "champion", D(2024, 2, 1), D(2025, 5, 1)),
        ("C2", "A1", "champion", D(2025, 5, 1), None),
        ("C3", "A1", "executive sponsor", D(2024, 2, 1), D(2025, 7, 1)),
        ("C4", "A1", "detractor", D(2025, 6, 1), None),
        ("C5", "A1", "user", D(2025, 7, 1), None),
    ])
    activities = _frame(["account_id", "occurred_at", "type"], [
        ("A1", T("2025-01-15"), "qbr"),
        ("A1", T("2025-04-10"), "qbr"),
        ("A1", T("2025-06-15"), "call"),
        ("A1", T("2025-06-28"), "email"),
        ("A1", T("2025-05-01"), "onboarding session"),
        ("A1", T("2025-07-01"), "qbr"),
    ])
    return {
        "accounts": accounts, "subscriptions": subscriptions, "usage_events": usage_events,
        "support_tickets": support_tickets, "nps_responses": nps_responses,
        "contacts": contacts, "activities": activities,
    }


def feature_columns() -> list[str]:
    """The default catalogue's feature columns, in snapshot order."""
    from features.build import feature_groups
    from features.catalogue import all_features

    return [f.name for f in all_features(feature_groups())]
