"""Ranked lists of one generation's scores: the order of each list, pages, keyset cursors,
the owner and segment filters, and a page's response items.

A list ranks the accounts that have its value, by value descending then account_id; a page
cursor is the last row's sort key, so pages stay in order and never repeat or skip an
account, even across a reload.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from serving.registry import CROSS_SELL
from serving.results import item

if TYPE_CHECKING:
    from serving.scorer import Scorer

#: The public query value of the cross-sell list (`kind=cross_sell`); in code the task is
#: spelled `CROSS_SELL` ("cross-sell"), and this is the only other spelling.
CROSS_SELL_LIST = "cross_sell"
UNASSIGNED = "unassigned"  # the owner filter value of accounts whose owner is null
KINDS = {  # list kind -> (task whose reasons explain it, the value it is ranked by)
    "churn": ("churn", "arr_at_risk"),
    "upsell": ("upsell", "expected_expansion"),
    CROSS_SELL_LIST: (CROSS_SELL, "expected_cross_sell_arr"),
}


class CursorError(ValueError):
    """A pagination cursor that this list did not issue."""


@dataclass
class Page:
    rows: list[int]  # rows of `Scorer.cols` on this page, in rank order
    ranks: list[int]  # positions in the whole list
    next_cursor: str | None
    total: int
    list_ranks: list[int]  # positions in the list as filtered (= ranks without filters)


class Ranking:
    """Every list's total order over the scores' rows, and the filters' values."""

    def __init__(self, cols: dict[str, np.ndarray], ids: np.ndarray):
        self.cols = cols
        self.ids = ids
        self.order = {kind: self._ranking(value) for kind, (_, value) in KINDS.items()}
        self._distinct_values: dict[str, tuple[str, ...]] = {}  # owners, segments
        self._owners: list[str] | None = None
        self._rank_of: dict[str, np.ndarray] = {}  # kind -> each row's rank (0: not listed)

    def _ranking(self, value: str) -> tuple[np.ndarray, list[tuple[float, str]]]:
        """Rows with a value, by value descending then account_id: the list's total order,
        and its sort keys for keyset pagination."""
        v = self.cols[value].astype("float64")
        rows = np.flatnonzero(~np.isnan(v))
        order = rows[np.lexsort((self.ids[rows], -v[rows]))]
        keys = list(zip((-v[order]).tolist(), self.ids[order].tolist(), strict=True))
        return order, keys

    def heads(self) -> list[np.ndarray]:
        """Each list's rows in rank order (what the reasons warm-up explains first)."""
        return [order for order, _ in self.order.values()]

    def page(self, kind: str, owner: str | None, segment: str | None, limit: int,
             cursor: str | None) -> Page:
        """One page of a ranked list, after `cursor` (None: from the top)."""
        order, keys = self.order[kind]
        start = 0 if cursor is None else bisect.bisect_right(keys, decode_cursor(cursor, kind))
        mask = self._filter(owner, segment)
        picked: list[int] = []
        pos = start
        while pos < len(order) and len(picked) < limit + 1:
            chunk = order[pos: pos + 4 * (limit + 1)]
            hits = chunk if mask is None else chunk[mask[chunk]]
            picked.extend(int(r) for r in hits[: limit + 1 - len(picked)])
            pos += len(chunk)
        more = len(picked) > limit
        picked = picked[:limit]
        total = len(order) if mask is None else int(mask[order].sum())
        position = {int(r): i for i, r in enumerate(order[start: pos])}
        ranks = [start + position[r] + 1 for r in picked]
        before = start if mask is None else int(mask[order[:start]].sum())
        next_cursor = encode_cursor(kind, keys[start + position[picked[-1]]]) if more else None
        return Page(picked, ranks, next_cursor, total,
                    [before + i + 1 for i in range(len(picked))])

    def sorted_page(self, kind: str, owner: str | None, segment: str | None, key: np.ndarray,
                    descending: bool, limit: int, offset: int) -> Page:
        """A page of the list as filtered, ordered by `key` (one value per row; nulls last,
        ties in list order) instead of by value: the page's sortable columns. Pages are by
        offset (``next_cursor`` is the next offset), each row keeps its ranks in the list."""
        order, _ = self.order[kind]
        mask = self._filter(owner, segment)
        listed = order if mask is None else order[mask[order]]
        by = pd.Series(key[listed]).sort_values(ascending=not descending, na_position="last",
                                                kind="stable")
        positions = by.index.to_numpy()[offset: offset + limit]
        rows = [int(listed[p]) for p in positions]
        rank_of = self.rank_of(kind)
        more = offset + limit < len(listed)
        return Page(rows, [int(rank_of[r]) for r in rows],
                    str(offset + limit) if more else None, len(listed),
                    [int(p) + 1 for p in positions])

    def rank_of(self, kind: str) -> np.ndarray:
        """Each row's position in the whole list (0 where the row is not in it)."""
        if kind not in self._rank_of:
            order, _ = self.order[kind]
            ranks = np.zeros(len(self.ids), dtype=np.int64)
            ranks[order] = np.arange(1, len(order) + 1)
            self._rank_of[kind] = ranks
        return self._rank_of[kind]

    def _filter(self, owner: str | None, segment: str | None) -> np.ndarray | None:
        mask = None
        for column, wanted in (("owner", owner), ("segment", segment)):
            if wanted is not None:
                hit = self.cols[column] == wanted
                if column == "owner" and wanted == UNASSIGNED:  # the accounts without owner
                    hit = hit | pd.isna(self.cols[column])
                mask = hit if mask is None else mask & hit
        return mask

    def filter_mask(self, owner: str | None, segment: str | None) -> np.ndarray:
        """Which accounts a list filtered by owner (``unassigned``: none) and segment holds."""
        mask = self._filter(owner, segment)
        return np.ones(len(self.ids), dtype=bool) if mask is None else mask

    def owners(self) -> list[str]:
        """The owners to filter by, once per generation (every filtered list request checks
        against them); ``unassigned`` stands for the accounts without one (the data keep their
        null)."""
        if self._owners is None:
            named = list(self.distinct("owner"))
            if UNASSIGNED not in named and pd.isna(self.cols["owner"]).any():
                named.append(UNASSIGNED)
            self._owners = named
        return list(self._owners)

    def distinct(self, column: str) -> tuple[str, ...]:
        """The column's values, once per generation (the list filters check against them)."""
        if column not in self._distinct_values:
            self._distinct_values[column] = tuple(sorted(
                {v for v in self.cols[column] if isinstance(v, str)}))
        return self._distinct_values[column]


def ranked_items(scorer: Scorer, kind: str, owner: str | None, segment: str | None, limit: int,
                 cursor: str | None, with_reasons: bool) -> tuple[list[dict], str | None, int]:
    """A page's items with the list model's reasons (computed once, then cached)."""
    return page_items(scorer, kind, scorer.page(kind, owner, segment, limit, cursor),
                      with_reasons)


def sorted_items(scorer: Scorer, kind: str, owner: str | None, segment: str | None,
                 key: np.ndarray, descending: bool, limit: int, offset: int
                 ) -> tuple[list[dict], str | None, int]:
    """`ranked_items` ordered by `key` (`Ranking.sorted_page`); the next page is an offset."""
    page = scorer.ranking.sorted_page(kind, owner, segment, key, descending, limit, offset)
    return page_items(scorer, kind, page, True)


def page_items(scorer: Scorer, kind: str, page: Page, with_reasons: bool
               ) -> tuple[list[dict], str | None, int]:
    task = KINDS[kind][0]
    explained = scorer.reasons(page.rows, (task,)) if with_reasons else [None] * len(page.rows)
    items = [item(scorer.cols, r, e, rank, list_rank)
             for r, e, rank, list_rank in zip(page.rows, explained, page.ranks, page.list_ranks,
                                              strict=True)]
    return items, page.next_cursor, page.total


# --- cursors ----------------------------------------------------------------------------------
def encode_cursor(kind: str, key: tuple[float, str]) -> str:
    import base64

    import orjson

    raw = orjson.dumps({"k": kind, "v": key[0], "id": key[1]})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str) -> tuple[float, str]:
    import base64
    import binascii

    import orjson

    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(data, dict):
            raise ValueError("not an object")
        if data.get("k") != kind:
            raise CursorError(f"this cursor belongs to the {data.get('k')!r} list, not {kind!r}")
        value, account = float(data["v"]), str(data["id"])
        if not math.isfinite(value):
            raise ValueError("not finite")
        return value, account
    except CursorError:
        raise
    except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise CursorError("not a cursor issued by this list") from exc
