"""The logistic design written in place equals sklearn's ColumnTransformer exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from training.baselines import design_numbers
from training.linear_design import BLOCK, LinearDesign

NAN = np.nan


def reference(n: int, levels: tuple[int, ...], clip: float = 5.0) -> ColumnTransformer:
    """The ColumnTransformer `logistic_baseline` used before `LinearDesign`."""
    numeric = Pipeline([
        ("impute", SimpleImputer(strategy="median", add_indicator=True,
                                 keep_empty_features=True)),
        ("scale", StandardScaler(copy=False)),
        ("clip", FunctionTransformer(np.clip, kw_args={"a_min": -clip, "a_max": clip})),
    ])
    return ColumnTransformer([
        ("numeric", numeric, list(range(n))),
        ("categorical", OneHotEncoder(categories=[np.arange(k, dtype="float64") for k in levels],
                                      handle_unknown="ignore"),
         list(range(n, n + len(levels)))),
    ], remainder="drop")


def dense(x) -> np.ndarray:
    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)


# numerics: a (gaps), b (constant 3), c (all missing), d (no gap), e (one outlier);
# categorical s (3 levels; 7 is unknown, NaN missing)
SMALL = np.array([
    [1.0, 3.0, NAN, 0.5, 0.0, 0.0],
    [NAN, 3.0, NAN, 1.5, 0.0, 1.0],
    [4.0, 3.0, NAN, 2.5, 0.0, 2.0],
    [2.0, 3.0, NAN, 3.5, 0.0, 7.0],
    [NAN, 3.0, NAN, 4.5, 0.0, NAN],
    [7.0, 3.0, NAN, 5.5, 0.0, 1.0],
    [1.0, 3.0, NAN, 6.5, 0.0, 0.0],
    [5.0, 3.0, NAN, 7.5, 0.0, 1.0],
    [3.0, 3.0, NAN, 8.5, 0.0, 2.0],
    [6.0, 3.0, NAN, 9.5, 0.0, 0.0],
    [2.0, 3.0, NAN, 10.5, 0.0, 1.0],
    [4.0, 3.0, NAN, 11.5, 0.0, 2.0],
    [1.0, 3.0, NAN, 12.5, 0.0, 0.0],
    [9.0, 3.0, NAN, 13.5, 0.0, 1.0],
    [2.0, 3.0, NAN, 14.5, 0.0, 2.0],
    [3.0, 3.0, NAN, 15.5, 0.0, 0.0],
    [8.0, 3.0, NAN, 16.5, 0.0, 1.0],
    [1.0, 3.0, NAN, 17.5, 0.0, 2.0],
    [2.0, 3.0, NAN, 18.5, 0.0, 0.0],
    [4.0, 3.0, NAN, 19.5, 1e6, 1.0],
])
Y = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 1, 1])


def test_the_design_equals_the_column_transformer_on_a_small_frame():
    ref = reference(5, (3,))
    expected = dense(ref.fit_transform(SMALL))
    design = LinearDesign(5, (3,), 5.0).fit(SMALL)
    out = design.transform(SMALL)
    assert out.shape == expected.shape == (20, 5 + 2 + 3)  # indicators for a and c only
    assert np.array_equal(out, expected)
    assert out.flags["C_CONTIGUOUS"] and out.dtype == np.float64
    assert design.median_.tolist() == [3.0, 3.0, 0.0, 10.0, 0.0]
    assert design.flagged_.tolist() == [0, 2]
    assert design.scale_[1] == 1.0  # the constant column keeps scale 1: all zeros
    assert out[19, 4] == pytest.approx(19 ** 0.5)  # 1 of 20 rows: sqrt(19) deviations out
    assert out[3, -3:].tolist() == [0.0, 0.0, 0.0] and out[4, -3:].tolist() == [0.0, 0.0, 0.0]
    # new rows: an unseen level, gaps where training had none, a fractional code
    new = np.array([[NAN, 3.0, 1.0, NAN, 1e9, 9.0], [0.0, 1.0, NAN, 0.0, -1.0, 1.5]])
    scored = design.transform(new)
    assert np.array_equal(scored, dense(ref.transform(new)))
    assert scored[0, 4] == 5.0  # far out: clipped
    assert scored[:, -3:].tolist() == [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]


def test_the_coefficients_equal_the_column_transformers():
    ref = Pipeline([("columns", reference(5, (3,))),
                    ("model", LogisticRegression(C=0.1, max_iter=2000, random_state=0))])
    new = Pipeline([("columns", LinearDesign(5, (3,), 5.0)),
                    ("model", LogisticRegression(C=0.1, max_iter=2000, random_state=0))])
    ref.fit(SMALL, Y)
    new.fit(SMALL, Y)
    assert np.array_equal(new["model"].coef_, ref["model"].coef_)
    assert np.array_equal(new["model"].intercept_, ref["model"].intercept_)
    assert np.array_equal(new.predict_proba(SMALL), ref.predict_proba(SMALL))
    assert np.array_equal(new.decision_function(SMALL), ref.decision_function(SMALL))


def test_the_exported_numbers_read_alike_from_both_designs():
    """`design_numbers` (what `export_linear` serves) from a pipeline fitted before
    `LinearDesign` and from one fitted with it."""
    old = Pipeline([("columns", reference(5, (3,))), ("model", LogisticRegression())]).fit(SMALL, Y)
    new = Pipeline([("columns", LinearDesign(5, (3,))), ("model", LogisticRegression())]).fit(
        SMALL, Y)
    a, b = design_numbers(old), design_numbers(new)
    assert a["flagged"] == b["flagged"] == [0, 2] and a["clip"] == b["clip"] == 5.0
    for key in ("median", "mean", "scale"):
        assert np.array_equal(a[key], b[key]), key


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(2, 300), n=st.integers(1, 2 * BLOCK + 3), seed=st.integers(0, 10**6),
       gaps=st.floats(0.0, 0.9), order=st.sampled_from("CF"))
@example(rows=1000, n=BLOCK + 1, seed=1, gaps=0.0, order="C")  # row-major, a 1-column last block
@example(rows=30, n=1, seed=2, gaps=0.5, order="C")  # one numeric and its indicator
def test_the_design_equals_the_column_transformer_for_any_shape(rows, n, seed, gaps, order):
    """Every block width (a last block of one column included), any missing share, either
    memory layout of the input."""
    rng = np.random.default_rng(seed)
    levels = (2, 4)
    x = np.empty((rows, n + len(levels)))
    x[:, :n] = rng.normal(size=(rows, n)) * rng.uniform(0.01, 1e4, n) + rng.uniform(-50, 50, n)
    x[:, :n][rng.random((rows, n)) < gaps] = NAN
    for c, k in enumerate(levels):
        x[:, n + c] = rng.integers(-1, k + 2, rows).astype("float64")
    x = np.asarray(x, order=order)
    ref = reference(n, levels)
    expected = dense(ref.fit_transform(x))
    assert np.array_equal(LinearDesign(n, levels, 5.0).fit(x).transform(x), expected)


def test_a_matrix_of_the_wrong_width_is_refused():
    with pytest.raises(ValueError, match="6 columns .5 numeric, 1 categorical"):
        LinearDesign(5, (3,)).fit(SMALL[:, :4])
