"""The training table: stored feature snapshots joined to their labels, stacked over dates.

A snapshot and its labels describe the same accounts (those with a term in force at as_of), so
the join is checked, not hoped for. A date whose label window the data do not fully cover is
never trained or evaluated on: it is only scored (``scoring_dates``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
from datetime import date

import pandas as pd

from features.catalogue import ACCOUNT_ID, CANDIDATE_PRODUCT
from features.sources import RawTables
from features.store import FeatureStore
from training.labels import (
    ARR_AT_AS_OF,
    LABEL,
    PRODUCT,
    VALUE,
    label_window_observed,
    make_labels,
)

log = logging.getLogger(__name__)

ADDED_COLUMNS = (LABEL, VALUE, ARR_AT_AS_OF)


def labelled_dates(
    tables: RawTables, store: FeatureStore, dates: list[date] | None, horizon_days: int
) -> list[date]:
    """Stored snapshot dates (all, or those among ``dates``) whose label window is observed."""
    return [d for d in _stored(store, dates) if label_window_observed(tables, d, horizon_days)]


def scoring_dates(
    tables: RawTables, store: FeatureStore, dates: list[date] | None, horizon_days: int
) -> list[date]:
    """Stored snapshot dates whose label window runs past the data: score them, never train."""
    return [
        d for d in _stored(store, dates) if not label_window_observed(tables, d, horizon_days)
    ]


def build_dataset(
    task: str,
    tables: RawTables,
    store: FeatureStore,
    dates: list[date],
    horizon_days: int,
    **label_kwargs,
) -> pd.DataFrame:
    """Features and ``label``, ``value``, ``arr_at_as_of`` per (as_of, account_id), all dates.

    Dates without a stored snapshot or with an unobserved label window are skipped (logged).
    For cross-sell without a product, each row is an (account, candidate product) pair and the
    product is the categorical column ``candidate_product``.
    """
    # Each date's rows sorted on their own, then stacked in date order: the same rows in the
    # same order as sorting the stack, without a sorted copy of the whole stack (the stack of
    # 17 dates x 70,000 accounts is ~1 GB; one copy fewer is ~1 GB less at the peak).
    frames = [_date_rows(task, tables, store, d, horizon_days, label_kwargs)
              for d in _usable(task, tables, store, dates, horizon_days)]
    data = pd.concat(frames, ignore_index=True)
    del frames
    return_freed_memory()
    return _product_as_category(data)


def _usable(task: str, tables: RawTables, store: FeatureStore, dates: list[date],
            horizon_days: int) -> list[date]:
    """The ``dates`` with a snapshot and an observed label window, in order (the others are
    logged); ``ValueError`` when none is."""
    dates = _days(dates)
    usable = labelled_dates(tables, store, dates, horizon_days)
    skipped = sorted(set(dates) - set(usable))
    if skipped:
        log.info("%s dataset skips %d dates (no snapshot or window not observed): %s",
                 task, len(skipped), ", ".join(map(str, skipped)))
    if not usable:
        raise ValueError(
            f"no {task} training data: none of the {len(dates)} dates has both a stored "
            f"feature snapshot and a label window of {horizon_days} days that ends before the "
            f"extraction time; the latest usable as_of is the extraction time minus the horizon"
        )
    return sorted(usable)


def _date_rows(task: str, tables: RawTables, store: FeatureStore, as_of: date,
               horizon_days: int, label_kwargs: dict) -> pd.DataFrame:
    """One date's labelled rows, in (account, candidate product) order."""
    return _sorted_rows(labelled_snapshot(task, tables, store.read(as_of), as_of, horizon_days,
                                          **label_kwargs))


def _product_as_category(data: pd.DataFrame) -> pd.DataFrame:
    """The candidate product (cross-sell's pairs) as a categorical of the sorted products."""
    if CANDIDATE_PRODUCT in data.columns:
        products = sorted(data[CANDIDATE_PRODUCT].astype(str).unique())
        data[CANDIDATE_PRODUCT] = pd.Categorical(data[CANDIDATE_PRODUCT], categories=products)
    return data


def return_freed_memory() -> None:
    """Hand the heap pages freed by the per-date frames back to the operating system.

    glibc keeps them (0.9 GB after stacking 17 dates of 100,000 accounts), and the large
    arrays that follow (the feature matrix, the logistic design) are mapped afresh instead of
    reusing them, so they would count twice towards the peak. A no-op without glibc.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _sorted_rows(snapshot: pd.DataFrame) -> pd.DataFrame:
    """One date's rows in (account, candidate product) order (as they are when already so).
    Products are still text here, whose order is that of their sorted categories later."""
    if CANDIDATE_PRODUCT not in snapshot.columns and snapshot[ACCOUNT_ID].is_monotonic_increasing:
        return snapshot
    keys = [ACCOUNT_ID, *([CANDIDATE_PRODUCT] if CANDIDATE_PRODUCT in snapshot.columns else [])]
    return snapshot.sort_values(keys, kind="stable")


def labelled_snapshot(
    task: str,
    tables: RawTables,
    features: pd.DataFrame,
    as_of: date,
    horizon_days: int,
    **label_kwargs,
) -> pd.DataFrame:
    """One snapshot joined (inner) to its labels, after checking both cover the same accounts."""
    labels = make_labels(task, tables, as_of, horizon_days, **label_kwargs)
    per_pair = task == "cross-sell" and label_kwargs.get("product") is None
    _check_population(task, features, labels, as_of, full=_is_full_population(task, label_kwargs))
    columns = [ACCOUNT_ID, *([PRODUCT] if per_pair else []), *ADDED_COLUMNS]
    joined = features.merge(
        labels[columns], on=ACCOUNT_ID, how="inner",
        validate="one_to_many" if per_pair else "one_to_one",
    )
    return joined.rename(columns={PRODUCT: CANDIDATE_PRODUCT})


def _is_full_population(task: str, label_kwargs: dict) -> bool:
    """Churn (every account) and upsell label the whole population; the others a part of it."""
    return task == "upsell" or (task == "churn" and not label_kwargs.get("renewal_only"))


def _check_population(
    task: str, features: pd.DataFrame, labels: pd.DataFrame, as_of: date, full: bool
) -> None:
    in_snapshot, labelled = set(features[ACCOUNT_ID]), set(labels[ACCOUNT_ID])
    only_labels = sorted(labelled - in_snapshot)
    only_snapshot = sorted(in_snapshot - labelled) if full else []
    if only_labels or only_snapshot:
        raise ValueError(
            f"the feature snapshot of {as_of} and its {task} labels cover different accounts: "
            f"{len(only_snapshot)} only in the snapshot {only_snapshot[:5]}, "
            f"{len(only_labels)} only in the labels {only_labels[:5]}; rebuild the snapshot "
            "from the same raw data"
        )


def _stored(store: FeatureStore, dates: list[date] | None) -> list[date]:
    stored = store.dates()
    if dates is None:
        return stored
    wanted = set(_days(dates))
    return [d for d in stored if d in wanted]


def _days(dates: list[date]) -> list[date]:
    return sorted({pd.Timestamp(d).date() for d in dates})
