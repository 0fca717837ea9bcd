"""The feature catalogue: every feature declared once, next to the SQL that computes it.

A :class:`FeatureGroup` is one family's query: a CTE over one source table that returns
``account_id`` plus exactly the columns it declares. The declarations drive the computation
(the build refuses a group whose SQL returns other columns), the documentation
(``propensity features describe``) and the plain-language reasons in the scoring API.

Feature SQL is written in DuckDB's dialect using only portable constructs (CASE inside
aggregates, literal timestamps computed in Python, ``date_diff``), so that it can be
transpiled with SQLGlot and run unchanged on Spark. A family writes its boundaries from an ``At``
(``s.ts(n)``, ``s.day(n)``) and marks where a grid's dates enter (``s.dates()`` after a FROM,
``s.key(alias)`` before the account in GROUP BY / PARTITION BY / a select list, ``s.same(a, b)``
in a join): for one date (:class:`Cutoff`) these render nothing, so the text is the plain query;
for a grid (:class:`GridCutoff`) the same text gives every date's rows at once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

#: The key of every snapshot row, and so of the feature table, datasets and scores.
ACCOUNT_ID = "account_id"
AS_OF = "as_of"
#: The cross-sell model's one input that is not a snapshot column: the product offered
#: (training pairs each account with candidate products; serving sets the product it offers).
CANDIDATE_PRODUCT = "candidate_product"

#: The alias of a grid's dates table in the family SQL (``GridCutoff``).
AS_OF_ALIAS = "g"

FeatureType = Literal["float64", "int64", "string"]
SQL_TYPES: dict[str, str] = {"float64": "DOUBLE", "int64": "BIGINT", "string": "VARCHAR"}

#: Usage event types counted one by one; the generator emits exactly these.
DEFAULT_EVENT_TYPES = (
    "login", "view_report", "create_report", "export", "api_call", "integration_sync",
    "admin_action",
)


def exact(value: str) -> str:
    """A DOUBLE as DECIMAL(38, 6): its SUM and AVG are then exact, so they do not depend on the
    order the rows are added in (threads, or a grid's join, add them in another order than a
    date's own query; a double sum can then differ in its last bit)."""
    return f"CAST({value} AS DECIMAL(38, 6))"


def ratio(numerator: str, denominator: str) -> str:
    """``numerator / denominator`` in DOUBLE on both engines (Spark divides DECIMALs in DECIMAL,
    rounding to their scale)."""
    return f"CAST({numerator} AS DOUBLE) / CAST({denominator} AS DOUBLE)"


def event_type_key(event_type: str) -> str:
    """An event type as it appears in feature names (``events_<key>_30d``): lower case, each
    run of characters other than letters and digits as one ``_`` ("Page View" -> page_view)."""
    return re.sub(r"[^a-z0-9]+", "_", event_type.lower()).strip("_") or "blank"


def sql_text(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Feature:
    """One column of a snapshot, described for the account manager who reads its reasons."""

    name: str
    description: str
    family: str
    source: str  # the contract table it comes from ("subscriptions+usage_events" if derived)
    dtype: FeatureType
    window_days: int | None = None
    expr: str | None = None  # final-select expression for derived features; None = CTE column
    fill: int | float | None = None  # value for accounts without source rows (counts: 0)

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.dtype]

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(self.source.split("+"))


@dataclass(frozen=True)
class Cutoff:
    """A point-in-time boundary as SQL literals: a snapshot's as_of (features see only rows
    stamped strictly before it) or the end of a label window. Every time comparison in the
    feature and label SQL is written from these literals, never from ``now()``."""

    as_of: date

    def ts(self, days_before: int = 0) -> str:
        """SQL literal of the midnight ``days_before`` days before as_of."""
        moment = datetime.combine(self.as_of - timedelta(days=days_before), time())
        return f"TIMESTAMP '{moment:%Y-%m-%d %H:%M:%S}'"

    def day(self, days_before: int = 0) -> str:
        return f"DATE '{self.as_of - timedelta(days=days_before):%Y-%m-%d}'"

    # One date: the grid hooks below render nothing, so a family's SQL is the plain query.
    def dates(self) -> str:
        """What a family's FROM joins to see the dates (a grid's table of dates)."""
        return ""

    def key(self, alias: str = AS_OF_ALIAS) -> str:
        """The date column leading a GROUP BY, PARTITION BY or select list (with its comma)."""
        return ""

    def same(self, left: str, right: str) -> str:
        """The join condition that keeps two per-date relations on the same date."""
        return ""


@dataclass(frozen=True)
class GridCutoff:
    """Every date of a grid at once: the same family SQL as :class:`Cutoff` gives, evaluated
    for each row ``g`` of a table of dates (its ``as_of`` TIMESTAMP column, midnight), so one
    query returns every date's rows keyed by (as_of, account_id). The boundaries have the
    literals' types (TIMESTAMP, DATE), so each date's values are those of its own query."""

    table: str

    def ts(self, days_before: int = 0) -> str:
        return f"({AS_OF_ALIAS}.{AS_OF} - INTERVAL {days_before} DAY)" if days_before else \
            f"{AS_OF_ALIAS}.{AS_OF}"

    def day(self, days_before: int = 0) -> str:
        return f"CAST({self.ts(days_before)} AS DATE)"

    def dates(self) -> str:
        return f" CROSS JOIN {self.table} {AS_OF_ALIAS}"

    def key(self, alias: str = AS_OF_ALIAS) -> str:
        return f"{alias}.{AS_OF}, "

    def same(self, left: str, right: str) -> str:
        return f" AND {left}.{AS_OF} = {right}.{AS_OF}"

#: A boundary the family SQL is written from: one date, or every date of a grid.
At = Cutoff | GridCutoff


@dataclass(frozen=True)
class FeatureGroup:
    """A family's features and the CTE (given the as_of cutoff) that computes them per account."""

    name: str
    family: str
    source: str
    features: tuple[Feature, ...]
    cte: Callable[[At], str] | None  # None: derived from other groups' columns
    #: Optional: the family for every date of a grid's dates table (its name given), rows keyed
    #: by (as_of, account_id) like ``cte(GridCutoff(table))`` but written as a running
    #: formulation (range or ASOF joins) where that is cheaper; None: ``cte(GridCutoff(...))``.
    grid: Callable[[str], str] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)


@dataclass(frozen=True)
class FeatureSpec:
    """The configurable shape of the catalogue (from settings)."""

    windows_days: tuple[int, ...] = (7, 30, 90, 180)
    event_types: tuple[str, ...] = DEFAULT_EVENT_TYPES
    customer_score: bool = False  # the customer's own health score as a feature family

    def windows(self, at_least: int = 0, at_most: int = 10_000) -> tuple[int, ...]:
        return tuple(w for w in self.windows_days if at_least <= w <= at_most)


def catalogue_version(groups: list[FeatureGroup]) -> str:
    """A short hash of every declaration and query: changes whenever a feature's meaning may."""
    probe = Cutoff(date(2000, 1, 1))
    payload = [
        [g.name, [f.__dict__ for f in g.features], g.cte(probe) if g.cte else None] for g in groups
    ]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def all_features(groups: list[FeatureGroup]) -> list[Feature]:
    return [f for g in groups for f in g.features]


def describe_markdown(groups: list[FeatureGroup]) -> str:
    """The feature reference, generated from the declarations."""
    lines = [
        "# Feature catalogue",
        "",
        "Generated by `propensity features describe`; do not edit by hand.",
        f"Catalogue version `{catalogue_version(groups)}`. Every feature of a snapshot at "
        "`as_of` uses only data stamped strictly before `as_of`.",
        "",
        "The `events_<type>_<w>d` features below are for the generator's event types; a build "
        "counts the data's own most frequent ones instead (`max_event_types`, 8 by default), "
        "or the `event_types` setting when given (a name becomes lower case with `_` for other "
        "characters: `Page View` -> `events_page_view_30d`). The chosen list is stamped in the "
        "snapshots and the models.",
        "",
        "| feature | family | source | window | type | description |",
        "|---|---|---|---|---|---|",
    ]
    for f in all_features(groups):
        window = f"{f.window_days} d" if f.window_days else ""
        lines.append(
            f"| `{f.name}` | {f.family} | {f.source} | {window} | {f.dtype} | {f.description} |"
        )
    return "\n".join(lines) + "\n"
