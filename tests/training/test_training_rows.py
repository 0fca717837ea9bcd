"""The training rows built date by date equal the stacked path's, number for number.

The book is test_dataset's: 150 generated accounts, 5 labelled monthly snapshots of 2024.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.store import FeatureStore
from tests.features.feature_fixture import feature_columns
from tests.training.book_fixture import stored_book
from training.baselines import reference_columns
from training.dataset import build_dataset
from training.fingerprint import frame_digest
from training.models import FeatureSchema, model_matrix
from training.train import TRAIN_KEPT, uninformative
from training.training_rows import _share, _uninformative, build_training_rows

H = 90
LABELLED = [date(2024, m, 1) for m in range(4, 9)]
CASES = [("churn", {}), ("churn", {"renewal_only": True}), ("upsell", {"min_growth": 0.1}),
         ("cross-sell", {}), ("cross-sell", {"product": "analytics"})]


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    return stored_book(tmp_path_factory.mktemp("book"), [*LABELLED, date(2024, 9, 1)])


def _rows(book, task, kwargs, store=None):
    tables, stored = book
    return build_training_rows(task, tables, store or stored, LABELLED, H,
                               candidates=feature_columns(), kept=TRAIN_KEPT,
                               measured=reference_columns(task), **kwargs)


@pytest.mark.parametrize(("task", "kwargs"), CASES)
def test_the_rows_equal_the_stacked_path(book, task, kwargs):
    tables, store = book
    stack = build_dataset(task, tables, store, LABELLED, H, **kwargs)
    names = [c for c in feature_columns() if c in stack.columns]
    names += ["candidate_product"] if "candidate_product" in stack.columns else []
    dropped = uninformative(stack, names)
    used = [f for f in names if f not in dropped]
    schema = FeatureSchema.infer(stack, used)

    rows = _rows(book, task, kwargs)

    assert rows.dropped == dropped and rows.features == used
    assert rows.schema == schema
    expected = model_matrix(stack, schema)
    assert rows.x.dtype == expected.dtype and rows.x.flags.c_contiguous
    np.testing.assert_array_equal(rows.x, expected)  # NaN where NaN, every bit elsewhere
    pd.testing.assert_frame_equal(rows.frame, stack[[c for c in TRAIN_KEPT if c in stack]])
    pd.testing.assert_frame_equal(
        rows.measures.frame(), stack[[c for c in reference_columns(task) if c in stack]])
    # the snapshot's columns once per (account, as_of): fewer rows than pairs for cross-sell
    keys = stack[["account_id", "as_of"]].drop_duplicates()
    assert len(rows.measures.keyed) == len(keys) and len(rows.measures) == len(stack)
    assert list(rows.measures.per_row.columns) == ["label"]
    if task == "cross-sell" and not kwargs:
        assert len(keys) < len(stack)


@pytest.mark.parametrize("task", ["churn", "cross-sell"])
def test_constant_features_are_dropped_as_the_stacked_path_drops_them(book, task, tmp_path):
    # a column constant everywhere, one null everywhere, one constant within each date but not
    # across them (kept), one null on some dates and constant on the others (kept: being null
    # is the information), one of whole numbers on some dates (int64) and floats on others
    tables, store = book
    edited = FeatureStore(tmp_path / "edited")
    for i, as_of in enumerate(LABELLED):
        frame = store.read(as_of)
        frame["seats"] = 7
        frame["tickets_30d"] = np.nan
        frame["champions"] = i
        frame["qbrs_180d"] = np.nan if i % 2 else 3
        frame["touches_30d"] = 1 if i else 1.0
        edited.write(as_of, pa.Table.from_pandas(frame, preserve_index=False), "test")
    stack = build_dataset(task, tables, edited, LABELLED, H)
    names = [c for c in feature_columns() if c in stack.columns]
    names += ["candidate_product"] if "candidate_product" in stack.columns else []
    dropped = uninformative(stack, names)
    assert dropped == ["seats", "tickets_30d", "touches_30d"]

    rows = _rows(book, task, {}, edited)

    assert rows.dropped == dropped
    schema = FeatureSchema.infer(stack, [f for f in names if f not in dropped])
    assert rows.schema == schema
    np.testing.assert_array_equal(rows.x, model_matrix(stack, schema))


@pytest.mark.parametrize("task", ["churn", "cross-sell"])
def test_a_large_book_holds_the_same_numbers_as_float32(book, task, monkeypatch):
    # above LARGE_BOOK_ROWS training rows (here 300) the matrix is float32: the stacked
    # path's float64 matrix rounded once, whichever date passed the bound
    from training import models as models_module

    tables, store = book
    stack = build_dataset(task, tables, store, LABELLED, H)
    small = _rows(book, task, {})
    monkeypatch.setattr(models_module, "LARGE_BOOK_ROWS", 300)
    large = _rows(book, task, {})
    assert len(stack) > 300 and small.x.dtype == np.float64 and large.x.dtype == np.float32
    assert large.x.flags.c_contiguous
    np.testing.assert_array_equal(large.x, model_matrix(stack, small.schema).astype("float32"))
    assert large.schema == small.schema and large.dropped == small.dropped


def test_the_digest_follows_the_rows_not_their_storage_order(book, tmp_path):
    tables, store = book
    reversed_store = FeatureStore(tmp_path / "reversed")
    changed = FeatureStore(tmp_path / "changed")
    for as_of in LABELLED:
        frame = store.read(as_of)
        reversed_store.write(as_of, pa.Table.from_pandas(frame.iloc[::-1], preserve_index=False),
                             "test")
        if as_of == LABELLED[-1]:
            frame.loc[0, "seats"] += 1
        changed.write(as_of, pa.Table.from_pandas(frame, preserve_index=False), "test")
    digest = _rows(book, "cross-sell", {}).digest
    assert _rows(book, "cross-sell", {}, reversed_store).digest == digest
    assert _rows(book, "cross-sell", {}, changed).digest != digest
    assert _rows(book, "churn", {}).digest != digest


def test_snapshots_of_other_columns_are_refused_naming_both_dates(book, tmp_path):
    tables, store = book
    mixed = FeatureStore(tmp_path / "mixed")
    for as_of in LABELLED:
        frame = store.read(as_of)
        if as_of == LABELLED[2]:
            frame = frame.drop(columns=["seats"])
        mixed.write(as_of, pa.Table.from_pandas(frame, preserve_index=False), "test")
    with pytest.raises(ValueError, match=f"{LABELLED[0]} and {LABELLED[2]} hold different "
                                         r"columns \(\['seats'\]\)"):
        _rows(book, "churn", {}, mixed)


def test_a_column_of_text_in_one_snapshot_and_numbers_in_another_is_refused(book, tmp_path):
    tables, store = book
    mixed = FeatureStore(tmp_path / "mixed")
    for as_of in LABELLED:
        frame = store.read(as_of)
        if as_of == LABELLED[1]:
            frame["seats"] = frame["seats"].astype(str)
        mixed.write(as_of, pa.Table.from_pandas(frame, preserve_index=False), "test")
    with pytest.raises(ValueError, match=f"'seats' is text in the snapshot of {LABELLED[1]} "
                                         f"and numbers in that of {LABELLED[0]}"):
        _rows(book, "churn", {}, mixed)


_VALUES = st.one_of(
    st.lists(st.one_of(st.none(), st.sampled_from([0, 1, 2])), max_size=12).map(
        lambda v: pd.Series(v, dtype="Int64").astype("float64")),
    st.lists(st.sampled_from([0, 1]), max_size=12).map(lambda v: pd.Series(v, dtype="int64")),
    st.lists(st.one_of(st.none(), st.sampled_from(["a", "b"])), max_size=12).map(
        lambda v: pd.Series(v, dtype=object)),
)


@settings(max_examples=200, deadline=None)
@given(column=_VALUES, cuts=st.lists(st.integers(0, 12), max_size=3),
       ints=st.booleans())
def test_constant_over_the_dates_is_constant_over_the_stack(column, cuts, ints):
    # whatever the split into dates (empty ones too), and a date of whole numbers stored as
    # int64 beside dates of floats: a column is dropped exactly when the stack has <= 1 value
    bounds = sorted({0, len(column), *(min(c, len(column)) for c in cuts)})
    pieces = [column.iloc[a:b].reset_index(drop=True)
              for a, b in zip(bounds, bounds[1:], strict=False)]
    if ints and pieces and column.dtype == "float64" and pieces[0].notna().all():
        pieces[0] = pieces[0].astype("int64")
    pieces = pieces or [column]
    shares = [_share(date(2024, 1, 1), pd.DataFrame({"c": p}), ["c"]) for p in pieces]
    stack = pd.concat(pieces, ignore_index=True)
    assert _uninformative(shares, "c") == (stack.nunique(dropna=False) <= 1)


def test_frame_digest_is_what_the_per_date_digest_chains(book):
    # the digest covers each date's labelled rows whole (features, labels, values)
    import hashlib

    from training.dataset import _date_rows

    tables, store = book
    chained = hashlib.sha256()
    for as_of in LABELLED:
        chained.update(frame_digest(_date_rows("upsell", tables, store, as_of, H,
                                               {"min_growth": 0.1})).encode())
    assert _rows(book, "upsell", {"min_growth": 0.1}).digest == chained.hexdigest()


@given(n=st.integers(0, 50_000_000))
def test_the_matrix_is_float64_up_to_a_large_book_and_float32_above(n):
    from training.models import LARGE_BOOK_ROWS, matrix_dtype

    assert matrix_dtype(n) == ("float64" if n <= LARGE_BOOK_ROWS else "float32")
    assert matrix_dtype(LARGE_BOOK_ROWS) == "float64"  # the demo's and every test book's


def test_per_account_columns_come_back_row_by_row_in_their_order():
    from training.training_rows import PerAccount

    keyed = pd.DataFrame({"account_id": ["a", "b"], "nps_last": [9.0, np.nan],
                          "tenure_days": pd.array([10, None], dtype="Int64")})
    held = PerAccount(keyed, np.array([0, 0, 1], dtype=np.int32),
                      pd.DataFrame({"label": [1, 0, 0]}),
                      ["account_id", "label", "nps_last", "tenure_days"])
    expected = pd.DataFrame({"account_id": ["a", "a", "b"], "label": [1, 0, 0],
                             "nps_last": [9.0, 9.0, np.nan],
                             "tenure_days": pd.array([10, 10, None], dtype="Int64")})
    assert len(held) == 3
    pd.testing.assert_frame_equal(held.frame(), expected)
