"""The book at as_of: accounts that exist, their owner and name, and the products in force."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from features.book import BOOK_COLUMNS, account_book, products_sql
from features.sources import RawTables
from tests.features.raw_fixture import _dates, _ts, valid_frames


def book_frames() -> dict[str, pd.DataFrame]:
    """The valid fixture plus A4 (created on 2024-11-01) and three more terms:

    - S1 core A1 2023-01-01..2024-01-01, S2 core A1 2024-01-01.. (open): core held once;
    - S3 analytics A2 2023-06-01.. (open), cancelled 2024-10-15 10:00;
    - S4 core A3 2024-07-01..2025-07-01 (fixed), notice given 2024-09-01;
    - S5 support A1 2024-02-01..2025-02-01 (fixed);
    - S6 analytics A3 starting 2024-11-01 (open);
    - S7 core A4 starting 2024-11-01 (open).
    """
    frames = valid_frames()
    accounts = frames["accounts"]
    frames["accounts"] = pd.concat([accounts, pd.DataFrame({
        "account_id": ["A4"], "name": ["Gamma"], "parent_account_id": [None],
        "segment": ["SMB"], "industry": ["media"], "region": ["NA"], "owner": ["carol"],
        "created_at": _ts("2024-11-01 00:00:00"),
    })], ignore_index=True)
    subs = frames["subscriptions"].copy()
    subs["cancelled_at"] = _ts(None, None, "2024-10-15 10:00:00", "2024-09-01 09:00:00")
    extra = pd.DataFrame({
        "subscription_id": ["S5", "S6", "S7"],
        "account_id": ["A1", "A3", "A4"],
        "product": ["support", "analytics", "core"],
        "plan": ["pro", "starter", "starter"],
        "seats": pd.Series([3, 2, 1], dtype="int64"),
        "mrr": [100.0, 50.0, 10.0],
        "start_date": _dates("2024-02-01", "2024-11-01", "2024-11-01"),
        "end_date": _dates("2025-02-01", None, None),
        "cancelled_at": _ts(None, None, None),
        "billing_period": ["annual", "monthly", "monthly"],
        "auto_renew": [True, True, True],
        "discount_pct": [0.0, 0.0, 0.0],
    })
    frames["subscriptions"] = pd.concat([subs, extra], ignore_index=True)
    return frames


@pytest.fixture(scope="module")
def tables() -> RawTables:
    return RawTables.from_frames(book_frames())


def held(book: pd.DataFrame) -> dict[str, tuple]:
    return dict(zip(book["account_id"], book["products_held"], strict=True))


def test_book_at_as_of(tables):
    book = account_book(tables, date(2024, 11, 1))
    assert list(book.columns) == [*BOOK_COLUMNS, "products_held"]
    # A4 is created at midnight of as_of: not yet in the book
    assert book["account_id"].tolist() == ["A1", "A2", "A3"]
    assert book["name"].tolist() == ["Acme", "Acme Sub", "Beta"]
    assert book["owner"].tolist() == ["alice", "alice", "bob"]
    assert book["segment"].tolist() == ["enterprise", "mid-market", "SMB"]
    assert book["parent_account_id"].tolist()[1] == "A1"
    assert held(book) == {
        "A1": ("core", "support"),  # two core terms in a row count once; sorted
        "A2": (),  # open-ended term cancelled before as_of: gone
        "A3": ("core",),  # notice given, fixed term runs to its end; analytics starts on as_of
    }


def test_in_force_rule_at_its_edges(tables):
    # the cancellation at 10:00 on 2024-10-15 is not known at midnight of that day
    assert held(account_book(tables, date(2024, 10, 15)))["A2"] == ("analytics",)
    assert held(account_book(tables, date(2024, 10, 16)))["A2"] == ()
    later = account_book(tables, date(2024, 11, 2))
    assert held(later) == {"A1": ("core", "support"), "A2": (), "A3": ("analytics", "core"),
                           "A4": ("core",)}
    assert later.set_index("account_id").loc["A4", ["name", "owner"]].tolist() == [
        "Gamma", "carol"]
    # a fixed term is in force up to and including as_of = its end date, not after
    assert held(account_book(tables, date(2025, 7, 1)))["A3"] == ("analytics", "core")
    assert held(account_book(tables, date(2025, 7, 2)))["A3"] == ("analytics",)
    assert held(account_book(tables, date(2025, 2, 1)))["A1"] == ("core", "support")
    assert held(account_book(tables, date(2025, 2, 2)))["A1"] == ("core",)


def test_book_before_any_account_is_empty(tables):
    book = account_book(tables, date(2022, 1, 10))  # A1 created at 09:00 that day
    assert book.empty and list(book.columns) == [*BOOK_COLUMNS, "products_held"]


def test_all_products_are_every_product_ever_sold(tables):
    products = tables.sql(products_sql())["product"]
    assert [str(p) for p in products] == ["analytics", "core", "support"]
