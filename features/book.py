"""The book of accounts at as_of: who owns each account and which products it holds.

Lists for account managers are filtered by owner and show the company name; next-best-product
needs the products an account already holds (it is never offered one of those). These are
facts of the CRM at as_of, not model features, so they live here beside the features and use
the same in-force rule. Portable SQL (like the feature queries) so Spark can run it transpiled.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from features.catalogue import Cutoff
from features.sources import RawTables
from features.terms import in_force

BOOK_COLUMNS = ("account_id", "name", "owner", "segment", "parent_account_id")


def book_sql(s: Cutoff) -> str:
    """One row per account created before as_of: identity, owner and segment."""
    return f"""
SELECT {", ".join(f"a.{column}" for column in BOOK_COLUMNS)}
FROM accounts a
WHERE a.created_at < {s.ts()}
ORDER BY a.account_id"""


def holdings_sql(s: Cutoff) -> str:
    """(account_id, product) pairs with a term in force at as_of."""
    return f"""
SELECT DISTINCT s.account_id, s.product
FROM subscriptions s
WHERE {in_force(s.ts())}
ORDER BY s.account_id, s.product"""


def products_sql() -> str:
    """Every product ever sold: the candidates of a next-best-product offer."""
    return "SELECT DISTINCT product FROM subscriptions ORDER BY product"


def account_book(tables: RawTables, as_of: date) -> pd.DataFrame:
    """The book at as_of, with ``products_held`` as a sorted tuple per account."""
    s = Cutoff(as_of)
    book = tables.sql(book_sql(s))
    held = tables.sql(holdings_sql(s))
    per_account = held.groupby("account_id", sort=False)["product"].agg(tuple)
    book["products_held"] = book["account_id"].map(per_account)
    book["products_held"] = book["products_held"].apply(
        lambda v: v if isinstance(v, tuple) else ()
    )
    return book

