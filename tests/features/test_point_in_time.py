"""No leakage, as a property: nothing stamped at or after as_of can change a feature at as_of.

Hypothesis draws a small random book of accounts around AS_OF, then rewrites its future: rows
known at or after AS_OF are dropped, changed or added, and later-known values that fall at or
after AS_OF (cancelled_at, closed_at with its CSAT, a contact's end_date) are moved to another
such time or to null. Every feature of the snapshot at AS_OF must stay exactly the same, and so
must the customer's own health score that training reads for its comparison.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.build import build_features
from features.catalogue import FeatureSpec
from features.contract import ACTIVITY_TYPES, CONTACT_ROLES, SEGMENTS, TABLES, TICKET_PRIORITIES
from features.families.customer_score import latest_scores
from features.sources import RawTables

AS_OF = date(2025, 7, 1)
T0 = pd.Timestamp(AS_OF)
EVENT_TYPES = ("login", "export", "api_call")


def day(offset: int) -> date:
    return AS_OF + timedelta(days=int(offset))


def moment(offset_hours: int) -> pd.Timestamp:
    return T0 + pd.Timedelta(hours=int(offset_hours))


def random_book(rng: np.random.Generator, n_accounts: int) -> dict[str, pd.DataFrame]:
    """A small, contract-valid book whose dates straddle AS_OF."""
    ids = [f"A{i}" for i in range(n_accounts)]

    def pick(options, size=None):
        return rng.choice(np.asarray(options, dtype=object), size=size)

    accounts = pd.DataFrame({
        "account_id": ids, "name": ids,
        "parent_account_id": [None] + [pick([None, ids[0]]) for _ in ids[1:]],
        "segment": pick(SEGMENTS, n_accounts), "industry": "x", "region": "r", "owner": "o",
        "created_at": [moment(int(h)) for h in rng.integers(-24 * 500, 24 * 40, n_accounts)],
    })
    subs = []
    for i in range(int(rng.integers(n_accounts, 4 * n_accounts + 1))):
        start = int(rng.integers(-400, 40))
        end = None if rng.random() < 0.4 else start + int(rng.integers(1, 400))
        cancel = None if rng.random() < 0.5 else moment(24 * start + int(rng.integers(0, 24 * 400)))
        subs.append((f"S{i}", pick(ids), pick(["core", "analytics"]), pick(["starter", "pro"]),
                     int(rng.integers(0, 30)), float(rng.integers(0, 2000)), day(start),
                     None if end is None else day(end), cancel,
                     "monthly" if end is None else "annual", bool(rng.random() < 0.7),
                     float(rng.integers(0, 30))))
    subscriptions = pd.DataFrame(subs, columns=[
        "subscription_id", "account_id", "product", "plan", "seats", "mrr", "start_date",
        "end_date", "cancelled_at", "billing_period", "auto_renew", "discount_pct"])
    usage = pd.DataFrame({
        "account_id": pick(ids, n := int(rng.integers(0, 40))),
        "user_id": pick(["u1", "u2", "u3"], n),
        "event_time": [moment(h) for h in rng.integers(-24 * 200, 24 * 40, n)],
        "event_type": pick(EVENT_TYPES, n), "quantity": rng.integers(0, 5, n),
    })
    opened = rng.integers(-24 * 200, 24 * 40, m := int(rng.integers(0, 12)))
    tickets = pd.DataFrame({
        "ticket_id": [f"K{i}" for i in range(m)], "account_id": pick(ids, m),
        "opened_at": [moment(h) for h in opened],
        "closed_at": [None if rng.random() < 0.3 else moment(h + int(rng.integers(0, 24 * 60)))
                      for h in opened],
        "priority": pick(TICKET_PRIORITIES, m), "escalated": rng.random(m) < 0.3,
        "csat": [float(v) for v in rng.integers(1, 6, m)],
    })
    nps = pd.DataFrame({
        "account_id": pick(ids, k := int(rng.integers(0, 10))), "contact_id": None,
        "responded_at": [moment(h) for h in rng.integers(-24 * 400, 24 * 40, k)],
        "score": rng.integers(0, 11, k),
    })
    c_start = rng.integers(-400, 40, c := int(rng.integers(0, 10)))
    contacts = pd.DataFrame({
        "contact_id": [f"C{i}" for i in range(c)], "account_id": pick(ids, c),
        "role": pick(CONTACT_ROLES, c), "start_date": [day(s) for s in c_start],
        "end_date": [None if rng.random() < 0.5 else day(s + int(rng.integers(0, 300)))
                     for s in c_start],
    })
    activities = pd.DataFrame({
        "account_id": pick(ids, a := int(rng.integers(0, 12))),
        "occurred_at": [moment(h) for h in rng.integers(-24 * 250, 24 * 40, a)],
        "type": pick(ACTIVITY_TYPES, a),
    })
    scored = sorted(set(int(h) for h in rng.integers(-24 * 300, 24 * 40, int(rng.integers(0, 10)))))
    health_scores = pd.DataFrame({  # distinct moments: (account_id, scored_at) is the key
        "account_id": pick(ids, len(scored)),
        "scored_at": [moment(h) for h in scored],
        "score": rng.uniform(0, 100, len(scored)).round(1),
        "label": pick(["red", "green", None], len(scored)),
    })
    return as_time_columns({
        "accounts": accounts, "subscriptions": subscriptions, "usage_events": usage,
        "support_tickets": tickets, "nps_responses": nps, "contacts": contacts,
        "activities": activities, "health_scores": health_scores})


def as_time_columns(book: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Every date/timestamp column as datetime64 with NaT for null (the views cast dates)."""
    for name, frame in book.items():
        for col in TABLES[name].time_columns:
            frame[col] = pd.to_datetime(frame[col]).astype("datetime64[ns]")
    return book


def _future_moment(rng: np.random.Generator) -> pd.Timestamp:
    return moment(int(rng.integers(0, 24 * 60)))


def rewrite_future(book: dict[str, pd.DataFrame], rng: np.random.Generator) -> dict:
    """Change everything stamped at or after AS_OF, and nothing else."""
    out = {k: v.copy() for k, v in book.items()}
    s = out["subscriptions"]
    future = pd.to_datetime(s["start_date"]) >= T0
    s.loc[future, "mrr"] = rng.integers(0, 5000, future.sum()).astype(float)
    s.loc[future, "seats"] = rng.integers(0, 50, future.sum())
    s = s[~(future & (rng.random(len(s)) < 0.5))]
    late_cancel = pd.to_datetime(s["cancelled_at"]) >= T0
    s.loc[late_cancel, "cancelled_at"] = [
        pd.NaT if rng.random() < 0.5 else _future_moment(rng) for _ in range(late_cancel.sum())]
    extra = s.head(2).copy()
    extra["subscription_id"] = extra["subscription_id"] + "-future"
    extra["start_date"] = T0
    extra["end_date"] = pd.NaT
    out["subscriptions"] = pd.concat([s, extra], ignore_index=True)

    u = out["usage_events"]
    u = u[~((u["event_time"] >= T0) & (rng.random(len(u)) < 0.5))]
    more = u.head(3).copy()
    more["event_time"] = [_future_moment(rng) for _ in range(len(more))]
    more["quantity"] = 1000
    out["usage_events"] = pd.concat([u, more], ignore_index=True)

    t = out["support_tickets"]
    t = t[~((t["opened_at"] >= T0) & (rng.random(len(t)) < 0.5))].copy()
    late = pd.to_datetime(t["closed_at"]) >= T0
    for idx in t.index[late]:
        new = pd.NaT if rng.random() < 0.5 else max(_future_moment(rng), t.at[idx, "opened_at"])
        t.at[idx, "closed_at"] = new
        t.at[idx, "csat"] = float(rng.integers(1, 6))
    out["support_tickets"] = t

    n = out["nps_responses"]
    future_n = n["responded_at"] >= T0
    n.loc[future_n, "score"] = 0
    out["nps_responses"] = n

    c = out["contacts"]
    future_c = pd.to_datetime(c["start_date"]) >= T0
    c.loc[future_c, "role"] = "champion"
    late_end = (pd.to_datetime(c["end_date"]) >= T0) & ~future_c
    c.loc[late_end, "end_date"] = [
        pd.NaT if rng.random() < 0.5 else pd.Timestamp(day(int(rng.integers(0, 90))))
        for _ in range(late_end.sum())]
    out["contacts"] = c

    a = out["activities"]
    a = a[~((a["occurred_at"] >= T0) & (rng.random(len(a)) < 0.5))]
    out["activities"] = pd.concat(
        [a, pd.DataFrame({"account_id": book["accounts"]["account_id"].head(1),
                          "occurred_at": [T0], "type": ["qbr"]})], ignore_index=True)

    h = out["health_scores"]
    future_h = h["scored_at"] >= T0
    h.loc[future_h, "score"] = 100.0
    h = h[~(future_h & (rng.random(len(h)) < 0.5))]
    out["health_scores"] = pd.concat([h, pd.DataFrame({  # scored exactly at AS_OF: not yet known
        "account_id": book["accounts"]["account_id"].head(1), "scored_at": [T0],
        "score": [-1.0], "label": ["red"]})], ignore_index=True).drop_duplicates(
            ["account_id", "scored_at"], keep="last")
    return as_time_columns(out)


def snapshot(book: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every feature (the customer score family included) and the customer score that
    training compares the model with, for every account at AS_OF."""
    tables = RawTables.from_frames(book)
    frame = build_features(tables, AS_OF, FeatureSpec(customer_score=True))
    rows = pd.DataFrame({"account_id": book["accounts"]["account_id"], "as_of": T0})
    frame["baseline_score"] = frame["account_id"].map(
        latest_scores(tables, rows).set_axis(rows["account_id"]))
    return frame


@pytest.mark.slow  # 60 snapshots of generated books: ~25 s
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    book_seed=st.integers(0, 2**32 - 1),
    future_seed=st.integers(0, 2**32 - 1),
    n_accounts=st.integers(1, 5),
)
def test_features_ignore_everything_at_or_after_as_of(book_seed, future_seed, n_accounts):
    book = random_book(np.random.default_rng(book_seed), n_accounts)
    rewritten = rewrite_future(book, np.random.default_rng(future_seed))
    pd.testing.assert_frame_equal(snapshot(book), snapshot(rewritten))


def test_the_property_can_fail():
    """A change before AS_OF does move features (the property above is not vacuous)."""
    book = random_book(np.random.default_rng(7), 3)
    before = snapshot(book)
    changed = {k: v.copy() for k, v in book.items()}
    changed["usage_events"] = pd.concat([changed["usage_events"], pd.DataFrame({
        "account_id": before["account_id"].head(1), "user_id": ["u1"],
        "event_time": [T0 - pd.Timedelta(hours=1)], "event_type": ["login"], "quantity": [5]})])
    after = snapshot(changed)
    assert after["events_7d"].iloc[0] == before["events_7d"].iloc[0] + 5
