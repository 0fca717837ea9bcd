"""The estimator (schema, model frame, LightGBM fit) and the logistic baseline (the
scorecard's tests are in test_baselines.py)."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import roc_auc_score

from training import models as models_module
from training.baselines import LOGISTIC_C_GRID, logistic_baseline
from training.models import (
    EARLY_STOPPING_ROUNDS,
    LARGE_BOOK_ROWS,
    MAX_LEARNING_RATE,
    ROWS_PER_TREE,
    FeatureSchema,
    bagging_fraction,
    book_params,
    contributions,
    fit_lightgbm,
    importance,
    lightgbm_dataset,
    lightgbm_params,
    model_matrix,
    predict_raw,
    to_model_frame,
    train_booster,
)


def mixed_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["a1", "a2", "a3"],
            "seats": np.array([10, 20, 30], dtype="int64"),
            "days_to_renewal": pd.array([5, None, 40], dtype="Int64"),
            "mrr": [1.5, np.nan, 3.0],
            "flag": [True, False, True],
            "segment": pd.Series(["SMB", None, "enterprise"], dtype="string"),
            "plan_tier": ["pro", "starter", "pro"],
            "region": pd.Series(["EU", "US", "EU"], dtype="category"),
        }
    )


FEATURES = ["seats", "days_to_renewal", "mrr", "flag", "segment", "plan_tier", "region"]


def test_infer_splits_numeric_and_categorical_with_sorted_levels():
    schema = FeatureSchema.infer(mixed_frame(), FEATURES)
    assert schema.numeric == ["seats", "days_to_renewal", "mrr", "flag"]
    assert schema.categorical == {
        "segment": ["SMB", "enterprise"],
        "plan_tier": ["pro", "starter"],
        "region": ["EU", "US"],
    }
    assert schema.columns == FEATURES


def test_schema_round_trips_through_a_dict_and_checks_its_column_order():
    schema = FeatureSchema.infer(mixed_frame(), FEATURES)
    d = schema.to_dict()
    assert d["columns"] == FEATURES
    assert FeatureSchema.from_dict(d) == schema
    with pytest.raises(ValueError, match="columns"):
        FeatureSchema.from_dict({**d, "columns": list(reversed(FEATURES))})


def test_model_frame_types_levels_and_unknowns():
    schema = FeatureSchema.infer(mixed_frame(), FEATURES)
    scoring = mixed_frame()
    scoring["segment"] = pd.Series(["mid-market", "SMB", None], dtype="string")  # unseen level
    frame = to_model_frame(scoring, schema)
    assert list(frame.columns) == FEATURES  # account_id dropped
    assert all(frame[c].dtype == "float64" for c in schema.numeric)
    np.testing.assert_array_equal(frame["days_to_renewal"], [5.0, np.nan, 40.0])
    np.testing.assert_array_equal(frame["flag"], [1.0, 0.0, 1.0])
    assert list(frame["segment"].cat.categories) == ["SMB", "enterprise"]
    assert frame["segment"].isna().tolist() == [True, False, True]
    assert frame["segment"].iloc[1] == "SMB"
    assert frame["region"].tolist() == ["EU", "US", "EU"]
    pd.testing.assert_frame_equal(to_model_frame(frame, schema), frame)  # idempotent


def test_model_frame_names_every_missing_column_and_refuses_text_in_numerics():
    schema = FeatureSchema.infer(mixed_frame(), FEATURES)
    with pytest.raises(KeyError, match="mrr, plan_tier"):
        to_model_frame(mixed_frame().drop(columns=["mrr", "plan_tier"]), schema)
    bad = mixed_frame().assign(mrr=["1.5", "lots", None])
    with pytest.raises(ValueError, match="'mrr'"):
        to_model_frame(bad, schema)
    np.testing.assert_array_equal(  # numbers stored as text, blanks missing
        to_model_frame(mixed_frame().assign(mrr=["1.5", "", None]), schema)["mrr"],
        [1.5, np.nan, np.nan],
    )


def test_model_matrix_holds_numbers_and_level_positions_in_schema_order():
    schema = FeatureSchema.infer(mixed_frame(), FEATURES)
    scoring = mixed_frame()
    scoring["segment"] = pd.Series(["mid-market", "SMB", None], dtype="string")  # unseen level
    nan = np.nan
    expected = np.array([
        # seats, days_to_renewal, mrr, flag, segment, plan_tier, region
        [10.0, 5.0, 1.5, 1.0, nan, 0.0, 0.0],  # mid-market: unknown -> missing
        [20.0, nan, nan, 0.0, 0.0, 1.0, 1.0],
        [30.0, 40.0, 3.0, 1.0, nan, 0.0, 0.0],  # None -> missing
    ])
    x = model_matrix(scoring, schema)
    assert x.dtype == np.float64 and x.flags.c_contiguous
    np.testing.assert_array_equal(x, expected)
    # from the model frame (Categoricals): the same numbers
    np.testing.assert_array_equal(model_matrix(to_model_frame(scoring, schema), schema), expected)
    with pytest.raises(KeyError, match="mrr, plan_tier"):
        model_matrix(scoring.drop(columns=["mrr", "plan_tier"]), schema)
    with pytest.raises(ValueError, match="'mrr'"):
        model_matrix(scoring.assign(mrr=["1.5", "lots", None]), schema)


def synthetic(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Label driven by `a` and by segment x; `noise` carries nothing; `b` has gaps."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "noise": rng.normal(size=n),
            "b": pd.array(rng.integers(0, 5, n), dtype="Int64"),
            "seg": pd.Series(rng.choice(["x", "y", "z"], n), dtype="string"),
        }
    )
    df.loc[::7, "b"] = pd.NA
    logit = 1.5 * df["a"] + 1.2 * (df["seg"] == "x").astype(float) - 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).to_numpy().astype(int)
    return df, y


SMALL = {"min_data_in_leaf": 100, "num_leaves": 31, "learning_rate": 0.05}  # sized for 600 rows


@pytest.fixture(scope="module")
def fitted():
    df, y = synthetic(900, seed=3)
    schema = FeatureSchema.infer(df, ["a", "noise", "b", "seg"])
    booster = fit_lightgbm(df[:600], y[:600], df[600:], y[600:], schema, seed=7, params=SMALL)
    return df, y, schema, booster


def test_fit_is_deterministic_and_seed_sensitive(fitted):
    df, y, schema, booster = fitted
    again = fit_lightgbm(df[:600], y[:600], df[600:], y[600:], schema, seed=7, params=SMALL)
    other = fit_lightgbm(df[:600], y[:600], df[600:], y[600:], schema, seed=8, params=SMALL)
    assert again.model_to_string() == booster.model_to_string()
    assert other.model_to_string() != booster.model_to_string()


def test_fit_stops_early_and_keeps_the_best_iteration(fitted):
    _, _, _, booster = fitted
    assert 0 < booster.best_iteration < 2000
    assert booster.num_trees() == booster.best_iteration  # trees after the best are dropped
    # the one metric early stopping watches; no AUC computed (and sorted) after every tree
    assert set(booster.best_score["valid"]) == {"binary_logloss"}


def test_fit_uses_native_categoricals_with_the_schema_levels(fitted):
    _, _, _, booster = fitted
    assert booster.pandas_categorical == [["x", "y", "z"]]
    splits = []

    def walk(node):
        if "split_feature" in node:
            splits.append(node["decision_type"])
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    assert "==" in splits  # a categorical split on seg


def test_fit_refuses_reweighting():
    df, y = synthetic(60, seed=1)
    schema = FeatureSchema.infer(df, ["a", "seg"])
    with pytest.raises(ValueError, match="is_unbalance"):
        fit_lightgbm(df, y, df, y, schema, seed=1, params={"is_unbalance": True})


def test_predictions_contributions_and_importance_agree(fitted):
    df, y, schema, booster = fitted
    frame = to_model_frame(df[600:], schema)
    p = predict_raw(booster, frame)
    contrib = contributions(booster, frame)
    assert contrib.shape == (300, 5)  # four features and the bias
    np.testing.assert_allclose(contrib.sum(axis=1), np.log(p / (1 - p)), atol=1e-9)
    assert roc_auc_score(y[600:], p) > 0.75
    imp = importance(booster)
    assert list(imp.columns) == ["feature", "gain", "split"]
    assert imp["feature"].iloc[0] == "a"
    assert imp["gain"].is_monotonic_decreasing
    assert (
        imp.set_index("feature").loc["noise", "gain"] < imp.set_index("feature").loc["seg", "gain"]
    )


def test_logistic_baseline_learns_the_signal_and_ignores_unknown_levels(fitted):
    df, y, schema, _ = fitted
    model = logistic_baseline(schema, seed=1).fit(df[:600], y[:600])
    p = model.predict_proba(df[600:])[:, 1]
    assert roc_auc_score(y[600:], p) > 0.75
    odd = pd.DataFrame(
        {
            "a": [0.0, 0.0, 0.0],
            "noise": [0.0] * 3,
            "b": pd.array([1, None, 2], dtype="Int64"),
            "seg": ["x", "w", None],
            "account_id": ["p", "q", "r"],
        }
    )
    onehot = model[:-1].transform(odd)[:, -3:]  # the seg block: x, y, z
    np.testing.assert_array_equal(onehot, [[1, 0, 0], [0, 0, 0], [0, 0, 0]])
    assert np.all(np.isfinite(model.predict_proba(odd)))
    # on a model frame (Categoricals) it gives the same answer as on the raw frame
    np.testing.assert_allclose(
        model.predict_proba(to_model_frame(df[600:], schema))[:, 1], p, rtol=0, atol=1e-12
    )


def test_logistic_baseline_can_tune_c_by_cross_validation(fitted):
    df, y, schema, _ = fitted
    model = logistic_baseline(schema, seed=1, tune=True).fit(df[:600], y[:600])
    assert isinstance(model[-1], LogisticRegressionCV)
    assert model[-1].C_ in LOGISTIC_C_GRID


def test_a_booster_from_the_matrix_scores_model_frames_and_matrices_alike(fitted):
    df, _, schema, booster = fitted
    frame = to_model_frame(df[600:], schema)
    np.testing.assert_array_equal(booster.predict(frame), booster.predict(model_matrix(frame,
                                                                                         schema)))
    # the levels travel in the model text, as they did when LightGBM read pandas frames
    assert 'pandas_categorical:[["x", "y", "z"]]' in booster.model_to_string()


def test_a_subset_of_the_shared_dataset_keeps_the_bins_of_all_rows():
    # `a` takes 40 values over all rows, 10 in the first 400: a Dataset built on those rows
    # alone bins `a` into 10 bins; their subset of the shared Dataset keeps all 40
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": np.r_[rng.integers(0, 10, 400), rng.integers(0, 40, 400)]
                       .astype(float), "b": rng.normal(size=800)})
    y = (rng.random(800) < 0.3).astype(int)
    schema = FeatureSchema.infer(df, ["a", "b"])
    x = model_matrix(df, schema)
    shared = lightgbm_dataset(x, y, schema, seed=3)
    first = np.arange(400)
    alone = lightgbm_dataset(x[first], y[first], schema, seed=3)
    subset = shared.subset(first).construct()
    assert alone.feature_num_bin(0) == 10
    assert subset.feature_num_bin(0) == shared.feature_num_bin(0) == 40
    np.testing.assert_array_equal(subset.get_label(), y[first])
    # boosting on the subset: the rows' own labels, the shared bins, as a Dataset built on
    # those rows with the shared one as its reference
    params = {"num_boost_round": 20, "min_data_in_leaf": 20}
    on_subset = train_booster(shared.subset(first), 400, None, 3, params)
    with_reference = lgb.Dataset(x[first], label=y[first].astype(float), reference=shared)
    assert on_subset.model_to_string() == train_booster(with_reference, 400, None, 3,
                                                        params).model_to_string()



def test_each_tree_sees_at_most_rows_per_tree_rows_and_small_books_keep_0_8():
    assert bagging_fraction(34_000) == 0.8  # the demo book: unchanged
    assert bagging_fraction(250_000) == 0.8  # 200,000 rows: the bound itself
    assert bagging_fraction(1_000_000) == 0.2
    assert lightgbm_params(1_000_000, 1)[0]["bagging_fraction"] == 0.2
    assert lightgbm_params(34_000, 1)[0]["bagging_fraction"] == 0.8
    # an explicit fraction is the caller's: kept as given
    assert lightgbm_params(1_000_000, 1, {"bagging_fraction": 0.5})[0]["bagging_fraction"] == 0.5


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 50_000_000))
def test_bagged_rows_per_tree_are_bounded_for_every_book(n):
    fraction = bagging_fraction(n)
    assert 0 < fraction <= 0.8
    assert n * fraction <= ROWS_PER_TREE * (1 + 1e-9)
    assert fraction == 0.8 or n * fraction >= ROWS_PER_TREE * (1 - 1e-9)  # no fewer either


def test_the_auc_metric_dropped_leaves_the_trees_and_the_stopping_point_unchanged(fitted):
    df, y, schema, booster = fitted
    with_auc = fit_lightgbm(df[:600], y[:600], df[600:], y[600:], schema, seed=7,
                            params={**SMALL, "metric": ["binary_logloss", "auc"]})
    assert with_auc.best_iteration == booster.best_iteration
    assert with_auc.dump_model()["tree_info"] == booster.dump_model()["tree_info"]


# --- larger steps on large books (issue 13 §2) --------------------------------------------


def test_books_up_to_250k_rows_keep_the_default_rate_and_larger_ones_step_further():
    # the demo, the test books and the oracle books (<= 170,000 rows): fitted as always
    for n in (0, 720, 34_000, 85_000, 170_000, LARGE_BOOK_ROWS):
        assert book_params(n) == {}
    assert book_params(500_000) == {"learning_rate": 0.06, "early_stopping_rounds": 50}
    # 100,000 accounts x 17 dates: capped at 0.1, a patience of 30 trees
    assert book_params(1_195_267) == {"learning_rate": 0.1, "early_stopping_rounds": 30}
    assert book_params(10_000_000) == {"learning_rate": 0.1, "early_stopping_rounds": 30}


@settings(max_examples=300, deadline=None)
@given(n=st.integers(LARGE_BOOK_ROWS + 1, 50_000_000), more=st.integers(0, 10_000_000))
def test_the_rate_grows_with_the_rows_and_the_patience_keeps_the_total_step(n, more):
    p, q = book_params(n), book_params(n + more)
    base = models_module.DEFAULT_PARAMS["learning_rate"]
    assert base < p["learning_rate"] <= q["learning_rate"] <= MAX_LEARNING_RATE
    assert p["learning_rate"] == pytest.approx(min(MAX_LEARNING_RATE, base * n / LARGE_BOOK_ROWS))
    # the patience is 100 trees of 0.03 in steps of the book's rate, to the nearest tree
    assert abs(p["early_stopping_rounds"] * p["learning_rate"] - EARLY_STOPPING_ROUNDS * base
               ) <= p["learning_rate"] / 2 + 1e-12
    assert q["early_stopping_rounds"] <= p["early_stopping_rounds"] <= EARLY_STOPPING_ROUNDS


def test_a_one_off_fit_on_a_large_book_takes_its_rate_and_patience(fitted, monkeypatch):
    df, y, schema, _ = fitted
    leaves = {k: v for k, v in SMALL.items() if k != "learning_rate"}

    def fit(**params):
        return fit_lightgbm(df[:600], y[:600], df[600:], y[600:], schema, seed=7,
                            params={**leaves, **params})

    as_always = fit()
    assert "[learning_rate: 0.03]" in as_always.model_to_string()
    monkeypatch.setattr(models_module, "LARGE_BOOK_ROWS", 300)  # 600 training rows: 0.06
    booster = fit()
    assert "[learning_rate: 0.06]" in booster.model_to_string()
    by_hand = fit(learning_rate=0.06, early_stopping_rounds=50)
    assert booster.model_to_string() == by_hand.model_to_string()
    assert booster.model_to_string() != as_always.model_to_string()
    # the caller's params win over the book's
    assert fit(learning_rate=0.03, early_stopping_rounds=100).model_to_string() == \
        as_always.model_to_string()
