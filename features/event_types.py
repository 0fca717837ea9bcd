"""Which usage event types get their own features: the data's most frequent ones, or a list.

A fixed list names events a customer's product may never emit (their features are then all
zero). By default the usage family counts the ``max_event_types`` event types with the most
events in the export instead; the ``event_types`` setting overrides the choice. The chosen list
is stamped in every snapshot (``FeatureStore``) and in every model's meta, and it is part of
the catalogue version, so training and serving refuse snapshots built with another list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING

from features.catalogue import DEFAULT_EVENT_TYPES, FeatureSpec, event_type_key

if TYPE_CHECKING:
    from features.settings import Settings
    from features.store import FeatureStore

#: Runs a query and returns its rows (DuckDB's or Spark's engine).
RunSql = Callable[[str], Sequence[tuple]]


def frequent_event_types_sql(limit: int) -> str:
    """The ``limit`` event types with the most events (portable SQL; ties by name)."""
    return (
        "SELECT event_type, SUM(quantity) AS events FROM usage_events "
        "WHERE quantity > 0 AND event_type IS NOT NULL GROUP BY event_type "
        f"ORDER BY events DESC, event_type LIMIT {int(limit)}"
    )


def frequent_event_types(run: RunSql, limit: int) -> tuple[str, ...]:
    """The most frequent event types, sorted by name (so that a change of rank alone does not
    change the catalogue); the default list when the data have no events at all."""
    chosen: dict[str, str] = {}  # one type per feature name ("Page View" and "page_view")
    for row in run(frequent_event_types_sql(limit)):
        chosen.setdefault(event_type_key(str(row[0])), str(row[0]))
    return tuple(sorted(chosen.values())) or DEFAULT_EVENT_TYPES


def chosen_spec(settings: Settings, run: RunSql) -> FeatureSpec:
    """The feature spec of a build: the ``event_types`` setting, else the data's choice; the
    customer score family when the setting asks for it and the data have scores."""
    from features.families.customer_score import HAS_SCORES_SQL

    score = settings.customer_score_as_feature and run(HAS_SCORES_SQL)[0][0] > 0
    if settings.event_types is not None:
        return settings.feature_spec(customer_score=score)
    return settings.feature_spec(frequent_event_types(run, settings.max_event_types),
                                 customer_score=score)


def stored_spec(settings: Settings, store: FeatureStore, as_of: date | None = None
                ) -> FeatureSpec:
    """The feature spec the snapshot of ``as_of`` (default: the latest) was built with, so
    that training and serving read the catalogue of the stored data rather than choose anew
    (the customer score family is in it when the snapshot has its column)."""
    from features.families.customer_score import SCORE

    dates = store.dates()
    day = as_of or (dates[-1] if dates else None)
    stamped = store.event_types(day) if day is not None else None
    score = SCORE in store.columns(day) if day is not None else False
    return settings.feature_spec(stamped, customer_score=score)
