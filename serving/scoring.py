"""From encoded feature matrices to the scored-account columns: churn and upsell
probabilities, the next best product (the likeliest product not held, one cross-sell pass per
candidate product), then valuation: money and a play.

The same path scores a whole snapshot at load and explicit feature values from a CRM (checked
first: unknown names, wrong values, too incomplete records are `InputError`s). Explicit values
go through the models' numpy path, one thread per small request, never pandas on one row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from features.catalogue import CANDIDATE_PRODUCT
from serving.completeness import Completeness, refuse_incomplete
from serving.inputs import (
    InputError,
    InputRules,
    Problem,
    UnknownCategories,
    importance_of,
    rules_of,
)
from serving.reasons import explain, plain, with_products
from serving.registry import CROSS_SELL, LoadedModel
from serving.valuation import ValueModel, value_columns

SPECIAL_KEYS = ("account_id", "held_products")  # record keys that are not model features
BATCH_THREADS = 2  # LightGBM threads for whole-snapshot and large-batch passes
SINGLE_ROW_LIMIT = 64  # up to this many rows a request predicts on one thread

Columns = dict[str, np.ndarray]


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


def threads(rows: int) -> int:
    """One thread for small requests (two threads fight over two cores), two for passes."""
    return 1 if rows <= SINGLE_ROW_LIMIT else BATCH_THREADS


def offered_products(models: dict[str, LoadedModel]) -> list[str]:
    """The products the cross-sell model can offer (none without one)."""
    cross = models.get(CROSS_SELL)
    if cross is None:
        return []
    return list(cross.model.schema["categorical"].get(CANDIDATE_PRODUCT, []))


def value_models(models: dict[str, LoadedModel]) -> tuple[ValueModel, ValueModel]:
    """What an expansion and an adopted product are worth, as the models learned them."""
    def meta(task: str) -> dict:
        return models[task].meta if task in models else {}

    return ValueModel.from_meta(meta("upsell")), ValueModel.from_meta(meta(CROSS_SELL))


class Scoring:
    """Scores under one set of models: probabilities, next best product and valuation of
    encoded matrices, and explicit inputs checked and scored with their reasons."""

    def __init__(self, models: dict[str, LoadedModel], dtypes: dict[str, str],
                 held_products: Sequence[str], labels: dict[str, str], k: int):
        self.models = models
        self.products = offered_products(models)
        self.labels = labels
        self.k = k
        self.known_features = sorted(
            {f for m in models.values() for f in m.features} - {CANDIDATE_PRODUCT})
        # Catalogue features training left out (constant or null in its window): a record may
        # carry them, and they are ignored.
        self.unused_features = frozenset(
            f for m in models.values() for f in (getattr(m, "meta", None) or {}).get(
                "dropped_features", ())) - set(self.known_features)
        self.importance = {task: importance_of(m.model, (CANDIDATE_PRODUCT,))
                           for task, m in models.items()}
        # products an account may hold: those offered, and those the book shows held (core)
        self.rules = InputRules(
            rules_of((m.model for m in models.values()), dtypes, (CANDIDATE_PRODUCT,)),
            sorted(set(self.products).union(held_products)))
        self.completeness = Completeness(models, self.importance)

    # --- matrices -> scores -------------------------------------------------------------------
    def scores(self, base: Columns, x: dict[str, np.ndarray], held: list[tuple]) -> Columns:
        """`base` (account_id, name, owner, segment, arr) with every score and value added."""
        n = len(held)
        cols = dict(base)
        for task in ("churn", "upsell"):
            cols[f"{task}_probability"] = self.probability(task, x.get(task), n)
        cols["next_best_product"], cols["next_best_product_probability"] = self.next_best(
            x.get(CROSS_SELL), held)
        return {**cols, **value_columns(cols, *value_models(self.models))}

    def probability(self, task: str, x: np.ndarray | None, n: int) -> np.ndarray:
        model = self.models.get(task)
        if model is None or x is None:
            return np.full(n, np.nan)
        return model.model.probability_matrix(x, threads(len(x)))

    def next_best(self, x: np.ndarray | None, held: list[tuple]
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the product not held with the highest adoption probability (None if
        every product is held or there is no cross-sell model)."""
        n = len(held)
        if x is None or not self.products:
            return np.full(n, None, dtype=object), np.full(n, np.nan)
        model = self.models[CROSS_SELL].model
        j = model.features.index(CANDIDATE_PRODUCT)
        p = np.empty((n, len(self.products)))
        for code, product in enumerate(self.products):
            candidate = x.copy()
            candidate[:, j] = code
            p[:, code] = model.probability_matrix(candidate, threads(n))
            p[[product in h for h in held], code] = -1.0
        best = np.argmax(p, axis=1)
        best_p = p[np.arange(n), best]
        names = np.array(self.products, dtype=object)[best]
        names[best_p < 0] = None
        return names, np.where(best_p < 0, np.nan, best_p)

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
                      max_missing: float | None = None) -> tuple[Columns, list[dict] | None]:
        """Score feature records: the scored-account columns (plus how much of each record
        was missing) and, if asked, reasons per row. Records missing more than `max_missing`
        of a model's importance are refused (`InputError`)."""
        def column(name: str) -> list:
            return [r.get(name) for r in records]

        return self._score_inputs(len(records), lambda m: m.matrix_from_records(records),
                                  column, tasks, with_reasons, max_missing, "features")

    def score_columns(self, columns: list[str], data: list[list], tasks: tuple[str, ...],
                      with_reasons: bool, max_missing: float | None = None
                      ) -> tuple[Columns, list[dict] | None]:
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
                      ) -> tuple[Columns, list[dict] | None]:
        """The shared path of explicit inputs: `encode(model)` gives a model's matrix,
        `column(name)` the values given for a name (None where absent)."""
        x = {t: encode(m.model) for t, m in self.models.items() if t in tasks}
        missing = self.completeness.missing(x, n)
        if max_missing is not None:
            refuse_incomplete(missing, max_missing, where)
        base = {
            "account_id": np.array([_text(v) for v in column("account_id")], dtype=object),
            "name": np.full(n, None, dtype=object),
            "owner": np.full(n, None, dtype=object),
            "segment": np.array([_text(v) for v in column("segment")], dtype=object),
            "arr": np.array([_number(v) for v in column("arr")], dtype="float64"),
        }
        cols = self.scores(base, x, [tuple(v or ()) for v in column("held_products")])
        cols["missing_features"], cols["missing_importance"], cols["missing_important"] = (
            missing[0], missing[1], missing[3])
        if not with_reasons:
            return cols, None
        return cols, self._input_reasons(x, cols["next_best_product"], column)

    def _input_reasons(self, x: dict[str, np.ndarray], offered: np.ndarray,
                       column: Callable[[str], list]) -> list[dict]:
        """Reasons of explicit inputs per row and task (None where cross-sell offers nothing),
        each shown with the value given."""
        reasons: list[dict] = [{} for _ in offered]
        given: dict[str, list] = {}

        def value_of(i: int, feature: str) -> object:
            if feature == CANDIDATE_PRODUCT:
                return offered[i]
            if feature not in given:
                given[feature] = column(feature)
            return plain(given[feature][i])

        for task, xt in x.items():
            model = self.models[task].model
            if task == CROSS_SELL:
                xt = with_products(model, xt, offered, self.products)
            found = explain(model, xt, self.k, value_of, self.labels, threads(len(xt)))
            for i, r in enumerate(found):
                reasons[i][task] = r if task != CROSS_SELL or offered[i] is not None else None
        return reasons


def snapshot_base(snapshot: pd.DataFrame, ids: np.ndarray, book: pd.DataFrame) -> Columns:
    """The unscored columns of snapshot accounts: id, and name and owner from the book."""
    names = book.set_index("account_id") if len(book) else pd.DataFrame()
    segment = snapshot.get("segment")
    arr = snapshot.get("arr")
    n = len(ids)
    return {
        "account_id": ids.astype(object),
        "name": _lookup(names, "name", ids),
        "owner": _lookup(names, "owner", ids),
        "segment": (np.full(n, None, dtype=object) if segment is None else
                    segment.astype(object).where(segment.notna(), None).to_numpy()),
        "arr": (np.full(n, np.nan) if arr is None else
                pd.to_numeric(arr, errors="coerce").to_numpy("float64", na_value=np.nan)),
    }


def _lookup(frame: pd.DataFrame, column: str, ids: np.ndarray) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(ids), None, dtype=object)
    return frame[column].reindex(ids).astype(object).where(lambda s: s.notna(), None).to_numpy()


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
