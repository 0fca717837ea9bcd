"""What explicit feature values must look like, and how complete a record is.

The rules come from the served models themselves: a feature is categorical with the levels the
model was trained on (its schema), otherwise numeric; the feature catalogue's dtype says which
numeric features are integers. A wrong value is an error at its path (`features[i].arr`,
`data[i][j]`), never a silent missing value: the model's own encoding is lenient (text in a
numeric column becomes NaN), so the service checks before it encodes.

Checks run column by column (`set(map(type, column))` is C speed), so a 10,000-row batch costs
milliseconds; only the offending cells are looked at one by one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

UnknownCategories = Literal["error", "missing"]
MAX_REPORTED = 20  # problems listed in one 422 (the count of the rest is given)
EXCERPT = 40  # characters of a bad value quoted back
DECIMAL = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", re.ASCII)
NUMBERS = (int, float)


@dataclass(frozen=True)
class Problem:
    """One entry of a 422: where (FastAPI's `loc`), which rule, and what was wrong."""

    loc: tuple
    type: str
    msg: str
    ctx: dict = field(default_factory=dict)

    def as_error(self) -> dict:
        out: dict = {"type": self.type, "loc": ["body", *self.loc], "msg": self.msg}
        if self.ctx:
            out["ctx"] = self.ctx
        return out


class InputError(ValueError):
    """Explicit inputs that cannot be scored as given; `errors()` is the 422 body."""

    def __init__(self, problems: list[Problem]):
        self.all = problems
        super().__init__("; ".join(p.msg for p in problems[:MAX_REPORTED]))

    def errors(self) -> list[dict]:
        out = [p.as_error() for p in self.all[:MAX_REPORTED]]
        if len(self.all) > MAX_REPORTED:
            out.append({"type": "more_errors", "loc": ["body"],
                        "msg": f"and {len(self.all) - MAX_REPORTED} more problems like these"})
        return out


@dataclass(frozen=True)
class FeatureRule:
    """What one feature accepts: `integer`, `number`, or one of `levels` (`category`)."""

    name: str
    kind: Literal["integer", "number", "category"]
    levels: tuple[str, ...] = ()

    @property
    def expected(self) -> str:
        if self.kind == "category":
            return "one of " + ", ".join(repr(v) for v in self.levels)
        if self.kind == "integer":
            return "an integer (true/false count as 1/0)"
        return "a number"


def excerpt(value: object, typed: bool = True) -> str:
    """A bad value as quoted in a message: its JSON type (if `typed`) and at most a short
    excerpt, never the whole input."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}" if typed else str(value).lower()
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    text = text if len(text) <= EXCERPT else text[: EXCERPT - 4] + "...'"
    return f"text {text}" if isinstance(value, str) and typed else text


def rules_of(models: Iterable, dtypes: dict[str, str], exclude: Sequence[str] = ()
             ) -> dict[str, FeatureRule]:
    """One rule per feature of any served model (categorical levels: those every model that
    uses the feature knows)."""
    rules: dict[str, FeatureRule] = {}
    for model in models:
        categorical = model.schema.get("categorical", {})
        for name in model.features:
            if name in exclude:
                continue
            if name in categorical:
                levels = tuple(categorical[name])
                if name in rules:
                    levels = tuple(v for v in rules[name].levels if v in levels)
                rules[name] = FeatureRule(name, "category", levels)
            elif name not in rules:
                kind = "integer" if dtypes.get(name) == "int64" else "number"
                rules[name] = FeatureRule(name, kind)
    return rules


class InputRules:
    """Checks explicit records or columns against the served models' features."""

    def __init__(self, rules: dict[str, FeatureRule], products: Sequence[str]):
        self.rules = rules
        self.products = tuple(products)  # empty: no cross-sell model, names not checked
        none = type(None)
        self._plain: dict[str, frozenset] = {  # values accepted at a glance, by type or level
            n: frozenset(r.levels) | {None} if r.kind == "category"
            else frozenset({none, int, float, bool} if r.kind == "integer" else {none, int, float})
            for n, r in rules.items()}

    def check_records(self, records: list[dict], unknown: UnknownCategories = "error"
                      ) -> list[list[str]]:
        """Problems of `features[i].<name>` raise `InputError`; returns per-record warnings
        (unknown categories scored as missing, when `unknown` is "missing")."""
        if len(records) <= 64 and self._plainly_valid(records):
            return [[] for _ in records]  # the usual small request: ~10 us, not ~200
        names = sorted({k for r in records for k in r})
        columns = {n: [r.get(n) for r in records] for n in names}
        return self._check(columns, len(records), lambda i, n: ("features", i, n), unknown,
                           records_typed=True)

    def _plainly_valid(self, records: list[dict]) -> bool:
        """Every value is of a type (or level) its feature takes as it is (text numbers and
        anything doubtful: the full check decides)."""
        plain, rules, products = self._plain, self.rules, set(self.products)
        for r in records:
            for k, v in r.items():
                accepted = plain.get(k)
                if accepted is not None:
                    kind = rules[k].kind
                    if kind == "category" and not isinstance(v, str | None):
                        return False  # a list is unhashable; numbers are never levels
                    if (v if kind == "category" else type(v)) not in accepted or (
                            kind == "integer" and type(v) is float and not v.is_integer()):
                        return False
                elif k == "held_products":
                    if v is not None and not (isinstance(v, list) and products.issuperset(v)):
                        return False
                elif k != "account_id":  # typed by the request schema
                    return False
        return True

    def check_columns(self, columns: list[str], data: list[list], unknown: UnknownCategories
                      = "error") -> list[list[str]]:
        """`check_records` for column-wise input: problems at `data[i][j]`, naming the column."""
        position = {c: j for j, c in enumerate(columns)}
        values = {c: [row[j] for row in data] for c, j in position.items()}
        return self._check(values, len(data), lambda i, n: ("data", i, position[n]), unknown,
                           records_typed=False)

    def _check(self, columns: dict[str, list], rows: int, loc, unknown: UnknownCategories,
               records_typed: bool) -> list[list[str]]:
        problems: list[Problem] = []
        warnings: list[list[str]] = [[] for _ in range(rows)]
        where = (lambda n: f"{n!r}") if records_typed else (lambda n: f"column {n!r}")
        for name, values in columns.items():
            rule = self.rules.get(name)
            if name == "held_products":
                problems += self._held(values, loc, where)
            elif name == "account_id" and not records_typed:
                problems += [
                    Problem(loc(i, name), "string_type", f"{where(name)}: expected text (at "
                            f"most 200 characters) or null, got {excerpt(v)}")
                    for i, v in enumerate(values)
                    if v is not None and not (isinstance(v, str) and len(v) <= 200)]
            elif rule is not None and rule.kind == "category":
                found, notes = self._categories(rule, values, loc, where, unknown)
                problems += found
                for i, note in notes:
                    warnings[i].append(note)
            elif rule is not None:
                problems += self._numbers(rule, values, loc, where)
        if problems:
            problems.sort(key=lambda p: p.loc)
            raise InputError(problems)
        return warnings

    def _numbers(self, rule: FeatureRule, values: list, loc, where) -> list[Problem]:
        types = set(map(type, values))
        integer = rule.kind == "integer"
        if types <= {type(None), int, float, *((bool,) if integer else ())}:
            if not integer or float not in types:
                return []  # the common case, at C speed
            x = np.array(values, dtype="float64")  # None -> NaN; JSON numbers are finite
            bad = np.flatnonzero(~np.isnan(x) & (np.floor(x) != x)).tolist()
        else:
            bad = [i for i, v in enumerate(values) if not _is_number(v, rule.kind)]
        return [Problem(loc(i, rule.name), f"{rule.kind}_type",
                        f"{where(rule.name)}: expected {rule.expected} or null, got "
                        f"{excerpt(values[i])}", {"expected": rule.kind})
                for i in bad]

    def _categories(self, rule: FeatureRule, values: list, loc, where,
                    unknown: UnknownCategories) -> tuple[list[Problem], list[tuple[int, str]]]:
        known = set(rule.levels)
        problems: list[Problem] = []
        notes: list[tuple[int, str]] = []
        if {type(None), str}.issuperset(map(type, values)) and known.issuperset(
                v for v in values if v is not None):
            return problems, notes  # the common case, at C speed
        for i, v in enumerate(values):
            if v is None or (isinstance(v, str) and v in known):
                continue
            if isinstance(v, list):
                problems.append(Problem(loc(i, rule.name), "category_type",
                                        f"{where(rule.name)}: expected {rule.expected} or "
                                        f"null, got a list", {"known": list(rule.levels)}))
                continue
            message = (f"{where(rule.name)}: unknown value {excerpt(v, typed=False)}; known "
                       f"values: {', '.join(rule.levels)}{_did_you_mean(v, rule.levels)}")
            if unknown == "missing":
                notes.append((i, f"{message} (scored as missing)"))
            else:
                problems.append(Problem(loc(i, rule.name), "unknown_category", message,
                                        {"known": list(rule.levels)}))
        return problems, notes

    def _held(self, values: list, loc, where) -> list[Problem]:
        problems = []
        known = set(self.products)
        for i, v in enumerate(values):
            if v is None:
                continue
            if not isinstance(v, list) or not all(isinstance(p, str) for p in v):
                problems.append(Problem(loc(i, "held_products"), "held_products_type",
                                        f"{where('held_products')}: expected a list of product "
                                        f"names or null, got {excerpt(v)}"))
                continue
            strangers = [p for p in v if p not in known] if known else []
            if strangers:
                problems.append(Problem(
                    loc(i, "held_products"), "unknown_product",
                    f"{where('held_products')}: unknown product {excerpt(strangers[0], False)}; "
                    f"known products: {', '.join(self.products)}", {"known": list(self.products)}))
        return problems


def _is_number(value: object, kind: str) -> bool:
    """A finite number (or text holding one); integers must be whole; booleans only count
    for integer features."""
    if value is None:
        return True
    if isinstance(value, bool):
        return kind == "integer"
    if isinstance(value, str):
        if not DECIMAL.fullmatch(value):
            return False
        value = float(value)
    if not isinstance(value, NUMBERS) or not math.isfinite(value):
        return False
    return kind != "integer" or float(value).is_integer()


def _did_you_mean(value: object, levels: Sequence[str]) -> str:
    if isinstance(value, str):
        close = [v for v in levels if v.casefold() == value.strip().casefold()]
        if close:
            return f" (did you mean {close[0]!r}?)"
    return ""


def importance_of(model, exclude: Sequence[str] = ()) -> np.ndarray:
    """Each feature's share of the model's total importance (LightGBM split gain), features in
    `exclude` weighing nothing; equal shares for a model that does not expose a booster."""
    features = list(model.features)
    booster = getattr(model, "booster", None)
    if booster is not None and hasattr(booster, "feature_importance"):
        gain = np.asarray(booster.feature_importance(importance_type="gain"), dtype="float64")
    else:
        gain = np.ones(len(features))
    gain = np.where([f in exclude for f in features], 0.0, gain)
    total = gain.sum()
    return gain / total if total > 0 else gain
