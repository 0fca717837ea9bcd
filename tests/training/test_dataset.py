"""The training table on a small generated book: 150 accounts over 10 months of 2024.

The export is extracted at 2024-11-01, so with a 90-day horizon the snapshots of 2024-04-01 to
2024-08-01 are labelled (2024-08-01 + 90 days = 2024-10-30) and those of 2024-09-01 and
2024-10-01 can only be scored.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pyarrow as pa
import pytest

from features.store import FeatureStore
from tests.features.feature_fixture import feature_columns
from tests.training.book_fixture import stored_book
from training.dataset import (
    CANDIDATE_PRODUCT,
    build_dataset,
    labelled_dates,
    scoring_dates,
)
from training.labels import make_labels

H = 90
STORED = [date(2024, m, 1) for m in range(4, 11)]
LABELLED = STORED[:5]
ASKED = [date(2024, 3, 1), *STORED]  # 2024-03-01 has no stored snapshot


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    return stored_book(tmp_path_factory.mktemp("book"), STORED)


def test_labelled_and_scoring_dates(book):
    tables, store = book
    assert labelled_dates(tables, store, ASKED, H) == LABELLED
    assert scoring_dates(tables, store, ASKED, H) == [date(2024, 9, 1), date(2024, 10, 1)]
    assert scoring_dates(tables, store, None, 31) == []  # 2024-10-01 + 31 days = extraction
    assert scoring_dates(tables, store, None, 32) == [date(2024, 10, 1)]  # None: all stored


@pytest.mark.parametrize("task", ["churn", "upsell"])
def test_dataset_rows_are_the_snapshot_rows(book, task):
    tables, store = book
    data = build_dataset(task, tables, store, ASKED, H)
    assert sorted(set(data["as_of"])) == LABELLED
    counts = data.groupby("as_of").size()
    for as_of in LABELLED:
        assert counts[as_of] == len(store.read(as_of))
    snapshot = store.read(LABELLED[0])
    assert list(data.columns) == [*snapshot.columns, "label", "value", "arr_at_as_of"]
    assert list(data.columns[2:-3]) == feature_columns()
    assert data["arr_at_as_of"].equals(data["arr"])  # labels measure ARR as the features do
    keys = list(zip(data["as_of"], data["account_id"], strict=True))
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert data["segment"].dtype == snapshot["segment"].dtype  # features keep their types


@pytest.mark.parametrize(("task", "low", "high"), [("churn", 0.01, 0.25), ("upsell", 0.02, 0.3)])
def test_label_rates_are_plausible(book, task, low, high):
    tables, store = book
    data = build_dataset(task, tables, store, LABELLED, H)
    assert set(data["label"]) == {0, 1}
    assert low <= data["label"].mean() <= high
    for as_of, group in data.groupby("as_of"):
        assert group["label"].sum() > 0, as_of  # every date has positives
    positives = data[data["label"] == 1]
    assert (positives["value"] > 0).all() and (data.loc[data["label"] == 0, "value"] == 0).all()
    if task == "churn":
        assert positives["value"].equals(positives["arr_at_as_of"])


def test_cross_sell_pairs_with_a_categorical_product(book):
    tables, store = book
    data = build_dataset("cross-sell", tables, store, LABELLED, H)
    assert isinstance(data[CANDIDATE_PRODUCT].dtype, pd.CategoricalDtype)
    products = list(data[CANDIDATE_PRODUCT].cat.categories)
    assert products == sorted(products) and len(products) >= 2
    for as_of in LABELLED:
        expected = make_labels("cross-sell", tables, as_of, H)
        assert (data["as_of"] == as_of).sum() == len(expected)
    keys = list(zip(data["as_of"], data["account_id"], data[CANDIDATE_PRODUCT].astype(str),
                    strict=True))
    assert keys == sorted(keys)
    assert 0 < data["label"].sum() < len(data)


def test_cross_sell_one_product_and_renewal_churn_are_subsets(book):
    tables, store = book
    snapshot_rows = sum(len(store.read(d)) for d in LABELLED)
    one = build_dataset("cross-sell", tables, store, LABELLED, H, product="analytics")
    assert CANDIDATE_PRODUCT not in one.columns
    assert 0 < len(one) < snapshot_rows
    renewal = build_dataset("churn", tables, store, LABELLED, H, renewal_only=True)
    assert 0 < len(renewal) < snapshot_rows and "renewal_due" not in renewal.columns
    full = build_dataset("churn", tables, store, LABELLED, H)
    merged = renewal.merge(full, on=["as_of", "account_id"], suffixes=("", "_full"))
    assert len(merged) == len(renewal)  # the same labels, on fewer accounts
    assert merged["label"].equals(merged["label_full"])


def test_no_observed_date_is_an_error(book):
    tables, store = book
    with pytest.raises(ValueError, match="no churn training data: none of the 2 dates"):
        build_dataset("churn", tables, store, STORED[-2:], H)


def test_population_mismatch_names_the_date(book, tmp_path):
    tables, store = book
    as_of = LABELLED[1]
    tampered = FeatureStore(tmp_path / "features")
    frame = store.read(as_of)
    dropped = frame["account_id"].iloc[3]
    tampered.write(as_of, pa.Table.from_pandas(frame.drop(index=3), preserve_index=False), "x")
    with pytest.raises(ValueError, match=f"snapshot of {as_of}.*1 only in the labels") as err:
        build_dataset("churn", tables, tampered, [as_of], H)
    assert dropped in str(err.value)


@pytest.mark.parametrize("task", ["churn", "cross-sell"])
def test_rows_come_in_date_then_account_order_whatever_order_the_snapshots_hold(
        book, task, tmp_path):
    # each date is sorted on its own before the dates are stacked: a store holding every
    # snapshot in reversed row order gives the very same table (order, index, dtypes)
    tables, store = book
    reversed_store = FeatureStore(tmp_path / "features")
    for as_of in LABELLED:
        frame = store.read(as_of)
        reversed_store.write(as_of, pa.Table.from_pandas(frame.iloc[::-1], preserve_index=False),
                             "test")
    data = build_dataset(task, tables, store, LABELLED, H)
    pd.testing.assert_frame_equal(build_dataset(task, tables, reversed_store, LABELLED, H), data)
    assert data.index.equals(pd.RangeIndex(len(data)))
    keys = list(zip(data["as_of"], data["account_id"], strict=True))
    assert keys == sorted(keys)
