"""The in-memory scorer: every account of the newest snapshot scored once, lists and look-ups
served from memory, reasons computed only for the rows that show them.

At load, one vectorised pass per model over the whole snapshot gives churn and upsell
probabilities and, per candidate product, cross-sell probabilities (products an account holds
are never offered). Valuation turns them into money and a play. A request for known accounts
is then array indexing; only reasons need the model again (TreeSHAP, ~0.5 ms a row per model)
and are cached per (task, account) for the life of this scorer. Explicit feature values from a
CRM go through the models' numpy path, one thread per request, never pandas on one row.

No FastAPI here: routes translate requests into calls on a `Scorer`.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from serving.inputs import (
    InputError,
    InputRules,
    Problem,
    UnknownCategories,
    importance_of,
    rules_of,
)
from serving.registry import LoadedModel
from serving.valuation import ValueModel, value_columns

KINDS = {  # list kind -> (task whose reasons explain it, the value it is ranked by)
    "churn": ("churn", "arr_at_risk"),
    "upsell": ("upsell", "expected_expansion"),
    "cross_sell": ("cross-sell", "expected_cross_sell_arr"),
}
CANDIDATE = "candidate_product"
SPECIAL_KEYS = ("account_id", "held_products")  # record keys that are not model features
BATCH_THREADS = 2  # LightGBM threads for whole-snapshot and large-batch passes
SINGLE_ROW_LIMIT = 64  # up to this many rows a request predicts on one thread
MISSING_SHOWN = 5  # missing features named per item, the most important first
UNASSIGNED = "unassigned"  # the owner filter value of accounts whose owner is null


class UnknownFeatureError(InputError):
    """A feature record names columns no served model knows."""

    def __init__(self, problems: list[tuple[int, str]], where: str = "features"):
        self.problems = problems
        self.where = where
        hint = "not a feature of any served model (see GET /v1/models)"
        super().__init__([Problem(("columns", i) if where == "columns" else (where, i, k),
                                  "unknown_feature", f"unknown feature {k!r}: {hint}")
                          for i, k in problems])
        self.args = ("; ".join(f"{where}[{i}]: unknown feature {k!r}" if where == "columns"
                               else f"{where}[{i}].{k}: unknown feature" for i, k in problems),)


class CursorError(ValueError):
    """A pagination cursor that this list did not issue."""


@dataclass(frozen=True)
class Reason:
    feature: str
    description: str
    value: object
    contribution: float


@dataclass
class Page:
    rows: list[int]  # rows of `Scorer.cols` on this page, in rank order
    ranks: list[int]
    next_cursor: str | None
    total: int


class TopReasons:
    """The k strongest raising and lowering contributions of every snapshot row of one model:
    feature indices (-1: none) and values, ~50 bytes a row instead of ~2 KB of objects, so
    every account of a 100,000-account book fits (~5 MB a model)."""

    def __init__(self, rows: int, k: int):
        self.k = k
        self.idx = np.full((rows, 2, k), -1, dtype=np.int16)
        self.val = np.zeros((rows, 2, k), dtype="float64")
        self.done = np.zeros(rows, dtype=bool)

    def fill(self, rows: list[int], contrib: np.ndarray) -> None:
        """Store rows' top-k from their contributions (features only, bias column dropped)."""
        k = min(self.k, contrib.shape[1])
        up = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
        down = np.argsort(contrib, axis=1, kind="stable")[:, :k]
        up_val = np.take_along_axis(contrib, up, axis=1)
        down_val = np.take_along_axis(contrib, down, axis=1)
        idx = np.full((len(rows), 2, self.k), -1, dtype=np.int16)
        val = np.zeros((len(rows), 2, self.k))
        idx[:, 0, :k] = np.where(up_val > 0, up, -1)
        idx[:, 1, :k] = np.where(down_val < 0, down, -1)
        val[:, 0, :k], val[:, 1, :k] = up_val, down_val
        self.idx[rows], self.val[rows] = idx, val
        self.done[rows] = True  # after the values: a reader never sees half a row


class Scorer:
    """Scores of one snapshot under one set of models; immutable once built (a reload builds
    a new one and swaps it in), except for the reasons filled in as they are asked for."""

    def __init__(self, models: dict[str, LoadedModel], snapshot: pd.DataFrame,
                 book: pd.DataFrame, as_of: date, descriptions: dict[str, str],
                 reasons_per_direction: int = 3, dtypes: dict[str, str] | None = None):
        self.models = models
        self.as_of = as_of
        self.descriptions = {**descriptions, CANDIDATE: "The product offered"}
        self.k = reasons_per_direction
        self.snapshot = snapshot.reset_index(drop=True)
        self.ids = self.snapshot["account_id"].astype(str).to_numpy()
        self.row_of = {a: i for i, a in enumerate(self.ids)}
        self.known_features = sorted({f for m in models.values() for f in m.features} - {CANDIDATE})
        # Catalogue features training left out (constant or null in its window): a record may
        # carry them, and they are ignored.
        self.unused_features = frozenset(
            f for m in models.values() for f in (getattr(m, "meta", None) or {}).get(
                "dropped_features", ())) - set(self.known_features)
        self.importance = {task: importance_of(m.model, (CANDIDATE,))
                           for task, m in models.items()}
        self._x = {task: m.model.matrix(self.snapshot) for task, m in models.items()}
        self.products = self._products()
        held = dict(zip(book["account_id"], book["products_held"], strict=True)) if len(
            book) else {}  # a dict: pandas Series.get costs ~10 µs an account
        self.held = [tuple(held.get(a, ())) for a in self.ids]
        # products an account may hold: those offered, and those the book shows held (core)
        self.rules = InputRules(
            rules_of((m.model for m in models.values()), dtypes or {}, (CANDIDATE,)),
            sorted(set(self.products).union(*self.held)))
        self.cols = self._score_all(book)
        self.table = pd.DataFrame(self.cols)
        self._order = {kind: self._ranking(value) for kind, (_, value) in KINDS.items()}
        self._top = {task: TopReasons(len(self.ids), self.k) for task in models}
        self._stop_warmup = threading.Event()
        self._masks: dict[str, np.ndarray] = {}
        self._plain_values: dict[str, np.ndarray] = {}  # feature -> JSON-ready values
        self._distinct_values: dict[str, tuple[str, ...]] = {}  # owners, segments
        self._plans: dict[tuple[str, ...], tuple] = {}  # tasks -> `_missing_plan`

    # --- load-time passes -------------------------------------------------------------------
    def _products(self) -> list[str]:
        cross = self.models.get("cross-sell")
        if cross is None:
            return []
        return list(cross.model.schema["categorical"].get(CANDIDATE, []))

    def _score_all(self, book: pd.DataFrame) -> dict[str, np.ndarray]:
        names = book.set_index("account_id") if len(book) else pd.DataFrame()
        segment = self.snapshot.get("segment")
        arr = self.snapshot.get("arr")
        n = len(self.ids)
        cols: dict[str, np.ndarray] = {
            "account_id": self.ids.astype(object),
            "name": _lookup(names, "name", self.ids),
            "owner": _lookup(names, "owner", self.ids),
            "segment": (np.full(n, None, dtype=object) if segment is None else
                        segment.astype(object).where(segment.notna(), None).to_numpy()),
            "arr": (np.full(n, np.nan) if arr is None else
                    pd.to_numeric(arr, errors="coerce").to_numpy("float64", na_value=np.nan)),
        }
        for task in ("churn", "upsell"):
            cols[f"{task}_probability"] = self._probability(task, self._x.get(task), n)
        cols["next_best_product"], cols["next_best_product_probability"] = self._next_best(
            self._x.get("cross-sell"), self.held)
        return self._value(cols)

    def _value(self, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        upsell = ValueModel.from_meta(self._meta("upsell"))
        cross = ValueModel.from_meta(self._meta("cross-sell"))
        return {**cols, **value_columns(cols, upsell, cross)}

    def _meta(self, task: str) -> dict:
        model = self.models.get(task)
        return model.meta if model else {}

    def _probability(self, task: str, x: np.ndarray | None, n: int) -> np.ndarray:
        model = self.models.get(task)
        if model is None or x is None:
            return np.full(n, np.nan)
        return model.model.probability_matrix(x, _threads(len(x)))

    def _cross_matrix(self, x: np.ndarray, product: str) -> np.ndarray:
        model = self.models["cross-sell"].model
        out = x.copy()
        out[:, model.features.index(CANDIDATE)] = self.products.index(product)
        return out

    def _next_best(self, x: np.ndarray | None, held: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the product not held with the highest adoption probability (None if
        every product is held or there is no cross-sell model)."""
        n = len(held)
        if x is None or not self.products:
            return np.full(n, None, dtype=object), np.full(n, np.nan)
        model = self.models["cross-sell"].model
        p = np.column_stack([
            model.probability_matrix(self._cross_matrix(x, prod), _threads(n))
            for prod in self.products
        ])
        for j, prod in enumerate(self.products):
            p[[prod in h for h in held], j] = -1.0
        best = np.argmax(p, axis=1)
        best_p = p[np.arange(n), best]
        names = np.array(self.products, dtype=object)[best]
        names[best_p < 0] = None
        return names, np.where(best_p < 0, np.nan, best_p)

    def _ranking(self, value: str) -> tuple[np.ndarray, list[tuple[float, str]]]:
        """Rows with a value, by value descending then account_id: the list's total order,
        and its sort keys for keyset pagination."""
        v = self.cols[value].astype("float64")
        rows = np.flatnonzero(~np.isnan(v))
        order = rows[np.lexsort((self.ids[rows], -v[rows]))]
        keys = list(zip((-v[order]).tolist(), self.ids[order].tolist(), strict=True))
        return order, keys

    # --- look-ups ---------------------------------------------------------------------------
    def rows_for(self, account_ids: list[str]) -> list[int | None]:
        return [self.row_of.get(a) for a in account_ids]

    def reasons(self, rows: list[int], tasks: tuple[str, ...]) -> list[dict[str, dict]]:
        """Reasons of snapshot rows per task. Each (task, row) is explained once (here, or by
        the warm-up thread) and kept as top-k feature indices and contributions."""
        out: list[dict[str, dict]] = [{} for _ in rows]
        for task in tasks:
            if task not in self.models:
                continue
            offered = self._explainable(task, rows)
            self._fill(task, sorted({r for r in offered if not self._top[task].done[r]}))
            for i, r in enumerate(rows):
                out[i][task] = self._stored_reasons(task, r) if r in offered else None
        return out

    def _explainable(self, task: str, rows: list[int]) -> set[int]:
        if task == "cross-sell":  # nothing offered, nothing to explain
            return {r for r in rows if self.cols["next_best_product"][r] is not None}
        return set(rows)

    def _explainable_mask(self, task: str) -> np.ndarray:
        if task not in self._masks:
            self._masks[task] = (
                np.array([p is not None for p in self.cols["next_best_product"]], dtype=bool)
                if task == "cross-sell" else np.ones(len(self.ids), dtype=bool))
        return self._masks[task]

    def _fill(self, task: str, rows: list[int]) -> None:
        if rows:
            model = self.models[task].model
            x = self._task_matrix(task, rows)
            contrib = model.contributions_matrix(x, _threads(len(rows)))
            self._top[task].fill(rows, contrib[:, : len(model.features)])

    def _stored_reasons(self, task: str, row: int) -> dict[str, list[Reason]]:
        features = self.models[task].model.features
        idx, val = self._top[task].idx[row], self._top[task].val[row]
        return {direction: [self._reason(features[j], v, self._snapshot_value(row, features[j]))
                            for j, v in zip(idx[d], val[d], strict=True) if j >= 0]
                for d, direction in enumerate(("raising", "lowering"))}

    # --- warm-up: every account's reasons, in the background, at the lowest priority --------
    def start_warmup(self, chunk: int = 256) -> threading.Thread:
        """Explain every account in a background thread (the head of each ranked list first:
        what the page and CRMs ask for), so that look-ups find their reasons ready. The
        thread runs at nice 19 and one LightGBM thread: requests keep the cores."""
        thread = threading.Thread(target=self._warm, args=(chunk,), name="reasons-warmup",
                                  daemon=True)
        thread.start()
        return thread

    def stop_warmup(self) -> None:
        self._stop_warmup.set()

    def _warm(self, chunk: int) -> None:
        _lowest_priority()
        heads = [order[:1000] for order, _ in self._order.values()]
        sequence = np.concatenate([*heads, np.arange(len(self.ids))]) if len(self.ids) else []
        for task in self.models:
            explainable = self._explainable_mask(task)
            todo = [int(r) for r in dict.fromkeys(sequence) if explainable[r]]
            for start in range(0, len(todo), chunk):
                if self._stop_warmup.is_set():
                    return
                self._fill(task, [r for r in todo[start: start + chunk]
                                  if not self._top[task].done[r]])

    def warmed(self) -> float:
        """Share of (task, account) reasons ready."""
        done = wanted = 0
        for task, top in self._top.items():
            mask = self._explainable_mask(task)
            done, wanted = done + int(top.done[mask].sum()), wanted + int(mask.sum())
        return done / wanted if wanted else 1.0

    def _task_matrix(self, task: str, rows: list[int]) -> np.ndarray:
        x = self._x[task][rows]
        if task == "cross-sell":
            return self._with_products(x, self.cols["next_best_product"][rows])
        return x

    def _with_products(self, x: np.ndarray, products: np.ndarray) -> np.ndarray:
        j = self.models["cross-sell"].model.features.index(CANDIDATE)
        x = x.copy()
        x[:, j] = [self.products.index(p) if p in self.products else np.nan for p in products]
        return x

    def _explain(self, task: str, x: np.ndarray, value_of: Callable[[int, str], object]
                 ) -> list[dict]:
        """Top-k raising and lowering contributions per row, with plain-language labels;
        `value_of(i, feature)` is row i's value of the feature, shown beside the reason."""
        model = self.models[task].model
        contrib = model.contributions_matrix(x, _threads(len(x)))[:, : len(model.features)]
        out = []
        for i, c in enumerate(contrib):
            up = [j for j in np.argsort(-c, kind="stable")[: self.k] if c[j] > 0]
            down = [j for j in np.argsort(c, kind="stable")[: self.k] if c[j] < 0]
            out.append({
                direction: [self._reason(model.features[j], c[j], value_of(i, model.features[j]))
                            for j in picked]
                for direction, picked in (("raising", up), ("lowering", down))
            })
        return out

    def _snapshot_value(self, row: int, feature: str) -> object:
        if feature == CANDIDATE:
            return self.cols["next_best_product"][row]
        values = self._plain_values.get(feature)
        if values is None:  # once per feature: pandas look-ups cost ~10 us each
            if feature not in self.snapshot.columns:  # scored as missing (an older snapshot)
                values = np.full(len(self.ids), None, dtype=object)
            else:
                column = self.snapshot[feature]
                values = column.astype(object).where(column.notna(), None).to_numpy()
            self._plain_values[feature] = values
        return values[row]

    def _reason(self, feature: str, contribution: float, value: object) -> Reason:
        return Reason(feature, self.descriptions.get(feature, feature), value,
                      round(float(contribution), 4))

    # --- explicit feature values (a CRM's own numbers) ---------------------------------------
    def check_records(self, records: list[dict], unknown: UnknownCategories = "error"
                      ) -> list[list[str]]:
        """Unknown feature names are refused (a typo would silently become a missing value),
        then wrong values (`InputError`); returns each record's warnings (unknown categories
        scored as missing when `unknown` is "missing")."""
        known = set(self.known_features) | set(SPECIAL_KEYS) | self.unused_features
        problems = [(i, k) for i, r in enumerate(records) if not known.issuperset(r)
                    for k in r if k not in known]  # issuperset: the common case in C
        if problems:
            raise UnknownFeatureError(problems[:20])
        return self.rules.check_records(records, unknown)

    def check_columns(self, columns: list[str], data: list[list] | None = None,
                      unknown: UnknownCategories = "error") -> list[list[str]]:
        """`check_records` for column-wise input: names at `columns[j]`, values at
        `data[i][j]`."""
        known = set(self.known_features) | set(SPECIAL_KEYS) | self.unused_features
        problems = [(j, c) for j, c in enumerate(columns) if c not in known]
        if problems:
            raise UnknownFeatureError(problems[:20], where="columns")
        return self.rules.check_columns(columns, data or [], unknown)

    def score_records(self, records: list[dict], tasks: tuple[str, ...], with_reasons: bool,
                      max_missing: float | None = None
                      ) -> tuple[dict[str, np.ndarray], list[dict] | None]:
        """Score feature records: columns like `self.cols` (plus how much of each record was
        missing) and, if asked, reasons per row. Records missing more than `max_missing` of
        a model's importance are refused (`InputError`)."""
        def column(name: str) -> list:
            return [r.get(name) for r in records]

        return self._score_inputs(len(records), lambda m: m.matrix_from_records(records),
                                  column, tasks, with_reasons, max_missing, "features")

    def score_columns(self, columns: list[str], data: list[list], tasks: tuple[str, ...],
                      with_reasons: bool, max_missing: float | None = None
                      ) -> tuple[dict[str, np.ndarray], list[dict] | None]:
        """Score column-wise input (names + rows of values, like MLflow's dataframe_split):
        4-5x fewer bytes than records for a big batch, and no per-row dict look-ups."""
        position = {c: j for j, c in enumerate(columns)}

        def column(name: str) -> list:
            j = position.get(name)
            return [None] * len(data) if j is None else [row[j] for row in data]

        return self._score_inputs(len(data), lambda m: m.matrix_from_columns(columns, data),
                                  column, tasks, with_reasons, max_missing, "data")

    def _score_inputs(self, n: int, encode: Callable[[object], np.ndarray],
                      column: Callable[[str], list], tasks: tuple[str, ...], with_reasons: bool,
                      max_missing: float | None = None, where: str = "features"
                      ) -> tuple[dict[str, np.ndarray], list[dict] | None]:
        """The shared path of explicit inputs: `encode(model)` gives a model's matrix,
        `column(name)` the values given for a name (None where absent)."""
        x = {t: encode(m.model) for t, m in self.models.items() if t in tasks}
        missing = self._missing(x, n)
        if max_missing is not None:
            self._refuse_incomplete(missing, max_missing, where)
        cols: dict[str, np.ndarray] = {
            "account_id": np.array([_text(v) for v in column("account_id")], dtype=object),
            "name": np.full(n, None, dtype=object),
            "owner": np.full(n, None, dtype=object),
            "segment": np.array([_text(v) for v in column("segment")], dtype=object),
            "arr": np.array([_number(v) for v in column("arr")], dtype="float64"),
        }
        for task in ("churn", "upsell"):
            cols[f"{task}_probability"] = self._probability(task, x.get(task), n)
        held = [tuple(v or ()) for v in column("held_products")]
        cols["next_best_product"], cols["next_best_product_probability"] = self._next_best(
            x.get("cross-sell"), held)
        cols = self._value(cols)
        cols["missing_features"], cols["missing_importance"], cols["missing_important"] = (
            missing[0], missing[1], missing[3])
        if not with_reasons:
            return cols, None
        reasons: list[dict] = [{} for _ in range(n)]
        products = cols["next_best_product"]
        given: dict[str, list] = {}

        def value_of(i: int, feature: str) -> object:
            if feature == CANDIDATE:
                return products[i]
            if feature not in given:
                given[feature] = column(feature)
            return _plain(given[feature][i])

        for task, xt in x.items():
            if task == "cross-sell":
                xt = self._with_products(xt, products)
            for i, r in enumerate(self._explain(task, xt, value_of)):
                offered = task != "cross-sell" or products[i] is not None
                reasons[i][task] = r if offered else None
        return cols, reasons

    def _missing(self, x: dict[str, np.ndarray], n: int
                 ) -> tuple[np.ndarray, np.ndarray, list[str | None], np.ndarray]:
        """Per row: how many of the scoring models' features are missing (absent, null or an
        unknown category), the largest share of one model's importance they carry, that
        model, and the most important missing features (at most `MISSING_SHOWN`)."""
        names, ranked, sources = self._missing_plan(tuple(x))
        gaps = np.zeros((n, len(names)), dtype=bool)
        share, worst = np.zeros(n), [None] * n
        for task, positions, columns in sources:
            missing = np.isnan(x[task])
            gaps[:, positions] = missing[:, columns]
            task_share = missing @ self.importance[task]
            if (task_share > share).any():
                worst = [task if w else t for w, t in zip(task_share > share, worst,
                                                          strict=True)]
                share = np.maximum(share, task_share)
        shown = np.empty(n, dtype=object)
        shown[:] = [[names[j] for j in np.flatnonzero(row)[:MISSING_SHOWN]]
                    for row in gaps[:, :ranked]]
        return gaps.sum(axis=1), share, worst, shown

    def _missing_plan(self, tasks: tuple[str, ...]
                      ) -> tuple[list[str], int, list[tuple[str, list[int], list[int]]]]:
        """The features of `tasks`' models, most important first (the first `ranked` have
        any importance), and where each model's matrix holds them; once per set of tasks."""
        if tasks not in self._plans:
            weight: dict[str, float] = {}
            for task in tasks:
                for f, w in zip(self.models[task].model.features, self.importance[task],
                                strict=True):
                    if f != CANDIDATE:
                        weight[f] = max(weight.get(f, 0.0), float(w))
            names = sorted(weight, key=lambda f: (-weight[f], f))
            at = {f: j for j, f in enumerate(names)}
            sources, placed = [], set()
            for task in tasks:
                features = self.models[task].model.features
                pairs = [(at[f], j) for j, f in enumerate(features)
                         if f != CANDIDATE and f not in placed]
                placed.update(features)
                sources.append((task, [p for p, _ in pairs], [j for _, j in pairs]))
            self._plans[tasks] = (names, sum(weight[f] > 0 for f in names), sources)
        return self._plans[tasks]

    def _refuse_incomplete(self, missing: tuple, limit: float, where: str) -> None:
        counts, share, worst, shown = missing
        problems = [
            Problem((where, int(i)), "too_many_missing",
                    f"{where}[{i}]: the missing features carry {share[i]:.0%} of the "
                    f"{worst[i]} model's importance (at most {limit:.0%} may be missing; "
                    f"{counts[i]} features missing, the most important: "
                    f"{', '.join(shown[i])}); send them, or null only where truly unknown",
                    {"missing_importance": round(float(share[i]), 4), "limit": limit,
                     "model": worst[i], "missing_important": shown[i]})
            for i in np.flatnonzero(share > limit + 1e-9)]  # shares sum to 1 up to rounding
        if problems:
            raise InputError(problems)

    # --- ranked lists -----------------------------------------------------------------------
    def page(self, kind: str, owner: str | None, segment: str | None, limit: int,
             cursor: str | None) -> Page:
        """One page of a ranked list; the cursor is the last row's sort key, so pages stay
        in order and never repeat or skip an account, even across a reload."""
        order, keys = self._order[kind]
        start = 0 if cursor is None else bisect.bisect_right(keys, decode_cursor(cursor, kind))
        mask = self._filter(owner, segment)
        picked: list[int] = []
        ranks: list[int] = []
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
        next_cursor = encode_cursor(kind, keys[start + position[picked[-1]]]) if more else None
        return Page(picked, ranks, next_cursor, total)

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
        """The owners to filter by; ``unassigned`` stands for the accounts without one (the
        data keep their null)."""
        named = list(self._distinct("owner"))
        if UNASSIGNED not in named and pd.isna(self.cols["owner"]).any():
            named.append(UNASSIGNED)
        return named

    def segments(self) -> list[str]:
        return list(self._distinct("segment"))

    def _distinct(self, column: str) -> tuple[str, ...]:
        """The column's values, once per scorer (the list filters check against them)."""
        if column not in self._distinct_values:
            self._distinct_values[column] = tuple(sorted(
                {v for v in self.cols[column] if isinstance(v, str)}))
        return self._distinct_values[column]

    def versions(self) -> dict[str, str | None]:
        return {task: m.version for task, m in self.models.items()}


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


# --- small helpers ----------------------------------------------------------------------------
def _lowest_priority() -> None:
    """Nice 19 for the calling thread (Linux schedules threads on their own)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def _threads(rows: int) -> int:
    """One thread for small requests (two threads fight over two cores), two for passes."""
    return 1 if rows <= SINGLE_ROW_LIMIT else BATCH_THREADS


def _lookup(frame: pd.DataFrame, column: str, ids: np.ndarray) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(ids), None, dtype=object)
    return frame[column].reindex(ids).astype(object).where(lambda s: s.notna(), None).to_numpy()


def _plain(value: object) -> object:
    """A JSON-friendly scalar: numpy numbers to Python, NaN/NA to None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
