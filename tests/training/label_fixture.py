"""A hand-made book of accounts whose labels at AS_OF (horizon 90 days) are worked out by hand.

AS_OF = 2025-01-01, HORIZON = 2025-04-01 (90 days later), so the label window is
[2025-01-01, 2025-04-01) and its last day is 2025-03-31. ARR = 12 x MRR of the terms in force.

R1  annual core ends 2025-03-31 (last day of the window), renewal row starts that day: no churn.
R2  annual core ends 2025-03-31, not renewed: churn.
R3  annual core ends exactly on the horizon 2025-04-01 (notice given): in force there, no churn.
DG  annual core ends 2025-02-01, downgraded to a monthly term, cancelled 2025-03-15: churn.
RA  monthly core cancelled 2025-02-10, a new term from 2025-03-01 (reactivated): no churn.
RB  churned 2024-11-01, back on 2025-02-01: not in force at AS_OF, not in the population.
NW  account created 2025-02-01 inside the window: not in the population.
ST  first term starts on AS_OF itself: not in the population.
MP  core + support; support cancelled 2025-02-15: partial churn only, ARR 15600 -> 12000.
PA  enterprise parent (core + analytics), unchanged; its children CA and CB:
CA  child, monthly core cancelled 2025-01-20: churn (the parent does not).
CB  child, co-terminous add-on of 10 seats from 2025-01-15: ARR 9600 -> 14400, upsell.
US  add-on of 1 seat (+10 % exactly): ARR 12000 -> 13200, upsell.
U9  add-on of +9 %: ARR 12000 -> 13080, not upsell.
UR  renewal on 2025-02-15 at a 20 % uplift: upsell.
XS  adds analytics on 2025-03-01 (ARR +4 % only): upsell through cross-sell; adopts analytics.
XC  adds monthly analytics 2025-01-10, cancels it 2025-02-20: adopted (ARR at its start 600).
XD  renewal downgraded 2025-03-01 and analytics added that day: ARR 12000 -> 7200, upsell
    through cross-sell (value = analytics ARR 1200).
MO  monthly core cancelled 2025-03-20 10:00: churn.
MC  monthly core cancelled exactly at the horizon 2025-04-01 00:00: still in force, no churn.
NT  gave notice 2025-01-15 on an annual term ending 2025-06-01: not churn within the horizon.
FR  a free plan (MRR 0) all along: neither churn nor upsell.
"""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd

AS_OF = date(2025, 1, 1)
HORIZON_DAYS = 90
HORIZON = date(2025, 4, 1)
EXTRACTED_AT = datetime(2025, 4, 1)
T = pd.Timestamp
D = date

SUB_COLUMNS = [
    "subscription_id", "account_id", "product", "plan", "seats", "mrr", "start_date",
    "end_date", "cancelled_at", "billing_period", "auto_renew", "discount_pct",
]
ACCOUNT_COLUMNS = [
    "account_id", "name", "parent_account_id", "segment", "industry", "region", "owner",
    "created_at",
]


def _annual(sid, acct, product, mrr, start, end, cancelled=None, seats=10):
    return (sid, acct, product, "pro", seats, mrr, start, end, cancelled, "annual", True, 0.0)


def _monthly(sid, acct, product, mrr, start, cancelled=None, seats=5):
    return (sid, acct, product, "starter", seats, mrr, start, None, cancelled, "monthly", True, 0.0)


SUBSCRIPTIONS = [
    _annual("R1a", "R1", "core", 1000.0, D(2024, 3, 31), D(2025, 3, 31)),
    _annual("R1b", "R1", "core", 1000.0, D(2025, 3, 31), D(2026, 3, 31)),
    _annual("R2a", "R2", "core", 500.0, D(2024, 3, 31), D(2025, 3, 31)),
    _annual("R3a", "R3", "core", 500.0, D(2024, 4, 1), D(2025, 4, 1), T("2025-02-01")),
    _annual("DGa", "DG", "core", 1000.0, D(2024, 2, 1), D(2025, 2, 1)),
    _monthly("DGb", "DG", "core", 400.0, D(2025, 2, 1), T("2025-03-15 09:00")),
    _monthly("RAa", "RA", "core", 200.0, D(2024, 6, 1), T("2025-02-10 12:00")),
    _monthly("RAb", "RA", "core", 200.0, D(2025, 3, 1)),
    _monthly("RBa", "RB", "core", 200.0, D(2024, 1, 1), T("2024-11-01")),
    _monthly("RBb", "RB", "core", 200.0, D(2025, 2, 1)),
    _annual("NWa", "NW", "core", 300.0, D(2025, 2, 1), D(2026, 2, 1)),
    _monthly("STa", "ST", "core", 100.0, D(2025, 1, 1)),
    _annual("MPa", "MP", "core", 1000.0, D(2024, 6, 1), D(2025, 6, 1)),
    _monthly("MPb", "MP", "support", 300.0, D(2024, 6, 1), T("2025-02-15")),
    _annual("PAa", "PA", "core", 5000.0, D(2024, 9, 1), D(2025, 9, 1), seats=200),
    _annual("PAb", "PA", "analytics", 1000.0, D(2024, 9, 1), D(2025, 9, 1)),
    _monthly("CAa", "CA", "core", 300.0, D(2024, 5, 1), T("2025-01-20")),
    _annual("CBa", "CB", "core", 800.0, D(2024, 10, 1), D(2025, 10, 1), seats=20),
    _annual("CBb", "CB", "core", 400.0, D(2025, 1, 15), D(2025, 10, 1), seats=10),
    _annual("USa", "US", "core", 1000.0, D(2024, 7, 1), D(2025, 7, 1), seats=10),
    _annual("USb", "US", "core", 100.0, D(2025, 2, 1), D(2025, 7, 1), seats=1),
    _annual("U9a", "U9", "core", 1000.0, D(2024, 7, 1), D(2025, 7, 1), seats=10),
    _annual("U9b", "U9", "core", 90.0, D(2025, 2, 1), D(2025, 7, 1), seats=1),
    _annual("URa", "UR", "core", 1000.0, D(2024, 2, 15), D(2025, 2, 15)),
    _annual("URb", "UR", "core", 1200.0, D(2025, 2, 15), D(2026, 2, 15), seats=12),
    _annual("XSa", "XS", "core", 500.0, D(2024, 8, 1), D(2025, 8, 1)),
    _annual("XSb", "XS", "analytics", 20.0, D(2025, 3, 1), D(2026, 3, 1), seats=1),
    _annual("XCa", "XC", "core", 500.0, D(2024, 8, 1), D(2025, 8, 1)),
    _monthly("XCb", "XC", "analytics", 50.0, D(2025, 1, 10), T("2025-02-20")),
    _annual("XDa", "XD", "core", 1000.0, D(2024, 3, 1), D(2025, 3, 1)),
    _annual("XDb", "XD", "core", 500.0, D(2025, 3, 1), D(2026, 3, 1)),
    _monthly("XDc", "XD", "analytics", 100.0, D(2025, 3, 1)),
    _monthly("MOa", "MO", "core", 100.0, D(2024, 5, 1), T("2025-03-20 10:00")),
    _monthly("MCa", "MC", "core", 100.0, D(2024, 5, 1), T("2025-04-01 00:00")),
    _annual("NTa", "NT", "core", 700.0, D(2024, 6, 1), D(2025, 6, 1), T("2025-01-15")),
    _monthly("FRa", "FR", "core", 0.0, D(2024, 1, 1)),
]

PARENTS = {"CA": "PA", "CB": "PA"}
CREATED = {"NW": T("2025-02-01"), "ST": T("2024-12-20")}


def accounts() -> pd.DataFrame:
    ids = sorted({row[1] for row in SUBSCRIPTIONS})
    rows = [
        (a, f"Account {a}", PARENTS.get(a), "enterprise" if a == "PA" else "SMB", "software",
         "EMEA", "alice", CREATED.get(a, T("2023-12-01")))
        for a in ids
    ]
    return pd.DataFrame(rows, columns=ACCOUNT_COLUMNS)


def subscriptions(rows: list[tuple] | None = None) -> pd.DataFrame:
    return pd.DataFrame(SUBSCRIPTIONS if rows is None else rows, columns=SUB_COLUMNS)


def frames(sub_rows: list[tuple] | None = None) -> dict[str, pd.DataFrame]:
    return {"accounts": accounts(), "subscriptions": subscriptions(sub_rows)}
