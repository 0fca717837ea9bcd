"""Model choice by expanding-window cross-validation: the folds keep the horizon, the rule
prefers the simpler model unless the other wins beyond its noise, the winner is refitted on
every training row and its out-of-fold predictions are what calibration sees."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training import models as models_module
from training import selection as selection_module
from training.baselines import logistic_baseline
from training.estimator import export_linear
from training.models import (
    FeatureSchema,
    fit_lightgbm,
    lightgbm_dataset,
    model_matrix,
    to_model_frame,
    train_booster,
)
from training.selection import (
    HandedOver,
    account_codes,
    account_sample,
    choose,
    expanding_folds,
    fit_logistic_rows,
    paired_se,
    select_and_refit,
)


def months(n: int, start: date = date(2024, 1, 1)) -> list[date]:
    return [(pd.Timestamp(start) + pd.DateOffset(months=i)).date() for i in range(n)]


def test_folds_on_a_monthly_grid_hand_worked():
    # 12 monthly dates, 90-day horizon. A third of the dates (4) must train the first block:
    # 2024-07-01 is the first date with 4 dates >= 90 days before it (Jan-Apr; Apr 1 + 90 days
    # = Jun 30). The 6 dates Jul..Dec make 4 blocks of 2, 2, 1, 1; each trains on every date
    # >= 90 days before its first (Sep 1 - 90 days = Jun 3, Nov 1 -> Aug 3, Dec 1 -> Sep 2).
    days = months(12)
    folds = expanding_folds(days, 90)
    assert [(f.train[-1], f.validation) for f in folds] == [
        (date(2024, 4, 1), [date(2024, 7, 1), date(2024, 8, 1)]),
        (date(2024, 6, 1), [date(2024, 9, 1), date(2024, 10, 1)]),
        (date(2024, 8, 1), [date(2024, 11, 1)]),
        (date(2024, 9, 1), [date(2024, 12, 1)]),
    ]
    assert all(f.train == [d for d in days if d <= f.train[-1]] for f in folds)


def test_too_short_a_span_for_any_fold_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 90 days"):
        expanding_folds(months(3), 90)


@settings(max_examples=200, deadline=None)
@given(
    offsets=st.lists(st.integers(0, 1500), min_size=2, max_size=40, unique=True),
    horizon=st.integers(1, 400),
    n_folds=st.integers(1, 6),
)
def test_no_validation_date_within_the_horizon_of_a_training_date(offsets, horizon, n_folds):
    days = [date(2023, 1, 1) + timedelta(days=o) for o in offsets]
    try:
        folds = expanding_folds(days, horizon, n_folds)
    except ValueError:
        assert max(days) - min(days) < timedelta(days=horizon)  # only when nothing fits
        return
    assert 1 <= len(folds) <= n_folds
    for fold in folds:
        assert fold.train and fold.validation
        assert min(fold.validation) - max(fold.train) >= timedelta(days=horizon)
        # every date the horizon before the block trains it: the window expands
        assert fold.train == sorted(d for d in set(days)
                                    if d + timedelta(days=horizon) <= fold.validation[0])
    blocks = [d for f in folds for d in f.validation]
    assert blocks == sorted(set(blocks))  # disjoint, in time order
    assert all(len(a.train) <= len(b.train) for a, b in pairwise(folds))


def test_paired_standard_error_is_clustered_by_account():
    # accounts a (rows 1, 3) and b (rows 2, 2): sums 4 and 4, mean 2 -> residuals 0: no noise
    assert paired_se(np.array([1.0, 3.0, 2.0, 2.0]), np.array(["a", "a", "b", "b"])) == 0.0
    # per-row view: a sums 2, b sums 6, mean diff 2; residuals -2, +2; se = sqrt(2 * 8) / 4
    diff, groups = np.array([1.0, 1.0, 3.0, 3.0]), np.array(["a", "a", "b", "b"])
    assert paired_se(diff, groups) == pytest.approx(1.0)
    assert paired_se(diff, np.array(["a"] * 4)) == float("inf")


def test_the_simpler_model_wins_unless_the_other_is_better_beyond_its_noise():
    groups = np.arange(4)
    base = np.array([0.5, 0.4, 0.6, 0.5])
    losses = {"logistic": base, "lightgbm": base - np.array([0.2, -0.1, 0.2, -0.1]),
              "blend": base - 0.01}
    chosen, report = choose(losses, groups)
    # lightgbm is best, 0.05 lower on average but erratic: the logistic's difference has
    # se = sqrt(4/3 * sum((d - 0.05)^2)) / 4 = sqrt(4/3 * 0.09) / 4 = 0.0866 > 0.05
    assert report["lightgbm"] == {"difference_to_best": 0.0, "standard_error": 0.0}
    assert report["logistic"]["difference_to_best"] == pytest.approx(0.05)
    assert report["logistic"]["standard_error"] == pytest.approx(np.sqrt(4 / 3 * 0.09) / 4)
    assert chosen == "logistic"
    steady = {**losses, "lightgbm": base - 0.05}  # better by 0.05 on every account: se 0
    assert choose(steady, groups)[0] == "lightgbm"


def book(n_accounts: int, n_dates: int, seed: int, nonlinear: bool):
    """Accounts x monthly dates; the label is a logistic function of `a` (linear) or depends on
    the sign of a * b (no linear signal at all)."""
    rng = np.random.default_rng(seed)
    days = months(n_dates)
    n = n_accounts * n_dates
    df = pd.DataFrame({
        "account_id": np.tile(np.arange(n_accounts), n_dates),
        "as_of": np.repeat(pd.to_datetime(days), n_accounts),
        "a": rng.normal(size=n), "b": rng.normal(size=n), "noise": rng.normal(size=n),
    })
    logit = (3.0 * np.sign(df["a"] * df["b"]) - 1.0) if nonlinear else (1.2 * df["a"] - 1.5)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()
    return df, y


def run(df: pd.DataFrame, y: np.ndarray, seed: int = 7):
    schema = FeatureSchema.infer(df, ["a", "b", "noise"])
    frame = to_model_frame(df, schema)
    return select_and_refit(frame, y, df["as_of"], df["account_id"], schema, 90, seed)


def test_a_small_book_with_a_linear_signal_chooses_logistic():
    df, y = book(60, 12, seed=1, nonlinear=False)
    estimator, selection = run(df, y)
    assert selection.chosen == "logistic" and estimator.kind == "logistic"
    assert estimator.booster is None
    # refit on every training row: the scaler saw all of them
    design = estimator.linear.named_steps["columns"]
    assert design.n_samples_seen_ == len(df) and len(df) == 720


def test_a_strongly_nonlinear_signal_chooses_trees():
    df, y = book(150, 12, seed=2, nonlinear=True)
    estimator, selection = run(df, y)
    assert selection.chosen in ("lightgbm", "blend")
    assert estimator.booster.num_trees() == selection.final_rounds
    c = selection.candidates
    assert c["logistic"]["difference_to_best"] > c["logistic"]["standard_error"] > 0


def test_out_of_fold_predictions_cover_exactly_the_validation_blocks():
    df, y = book(60, 12, seed=3, nonlinear=False)
    _, selection = run(df, y)
    blocks = {d for f in selection.folds for d in f["validation"]}
    in_blocks = np.flatnonzero(df["as_of"].dt.date.astype(str).isin(blocks).to_numpy())
    assert sorted(selection.oof_rows) == list(in_blocks)
    assert len(selection.oof) == sum(f["rows_validation"] for f in selection.folds) == 6 * 60
    np.testing.assert_array_equal(selection.oof_label, y[selection.oof_rows])
    assert selection.candidates[selection.chosen]["log_loss"] == pytest.approx(
        -np.mean(selection.oof_label * np.log(selection.oof)
                 + (1 - selection.oof_label) * np.log1p(-selection.oof)))


def test_same_data_and_seed_give_the_same_choice_and_scores():
    df, y = book(150, 12, seed=2, nonlinear=True)
    first, second = run(df, y)[1], run(df, y)[1]
    assert first.as_json() == second.as_json()
    np.testing.assert_array_equal(first.oof, second.oof)


def first_fold_rows(df: pd.DataFrame, selection) -> tuple[np.ndarray, np.ndarray]:
    fold = selection.folds[0]
    days = df["as_of"].dt.date.astype(str)
    train = (days >= fold["train_from"]) & (days <= fold["train_to"])
    return np.flatnonzero(train.to_numpy()), np.flatnonzero(days.isin(fold["validation"]))


def test_fold_trees_use_the_bins_of_all_training_rows_and_the_refit_is_a_plain_fit():
    df, y = book(150, 12, seed=2, nonlinear=True)
    schema = FeatureSchema.infer(df, ["a", "b", "noise"])
    x = model_matrix(df, schema)
    before = x.copy()
    estimator, selection = select_and_refit(x, y, df["as_of"], df["account_id"], schema, 90, 7)
    np.testing.assert_array_equal(x, before)  # nothing is fitted in place on the shared matrix
    assert selection.chosen == "lightgbm"
    # fold 1 by hand: its rows, with the bins of every training row (the shared Dataset)
    tr, va = first_fold_rows(df, selection)
    shared = lightgbm_dataset(x, y, schema, seed=7)
    booster = train_booster(shared.subset(tr), len(tr), shared.subset(va), seed=7)
    np.testing.assert_array_equal(selection.oof[: len(va)], booster.predict(x[va]))
    # the refit: exactly the one-off fit on every row for the chosen number of trees
    alone = fit_lightgbm(df, y, None, None, schema, seed=7,
                         params={"num_boost_round": selection.final_rounds})
    assert estimator.booster.model_to_string() == alone.model_to_string()
    # a model frame instead of the matrix: the same choice, scores and model
    same, again = run(df, y)
    assert again.as_json() == selection.as_json()
    np.testing.assert_array_equal(again.oof, selection.oof)
    assert same.booster.model_to_string() == estimator.booster.model_to_string()


def test_fold_logistic_fits_on_the_shared_matrix_equal_fits_on_the_frame_rows():
    df, y = book(60, 12, seed=1, nonlinear=False)
    _, selection = run(df, y)
    assert selection.chosen == "logistic"
    tr, va = first_fold_rows(df, selection)
    schema = FeatureSchema.infer(df, ["a", "b", "noise"])
    by_frame = logistic_baseline(schema, 7).fit(df.iloc[tr], y[tr]).predict_proba(df.iloc[va])
    np.testing.assert_array_equal(selection.oof[: len(va)], by_frame[:, 1])



# --- the logistic regression on a bounded sample of accounts (large books) ----------------


@settings(max_examples=100, deadline=None)
@given(n_accounts=st.integers(1, 300), n_dates=st.integers(1, 12), limit=st.integers(1, 3000),
       seed=st.integers(0, 5), start=st.integers(0, 11))
def test_the_account_sample_keeps_whole_accounts_about_the_limit_and_nests(
        n_accounts, n_dates, limit, seed, start):
    accounts = np.tile(np.arange(n_accounts) * 7 + 3, n_dates)  # stacked by date, like a book
    codes = account_codes(accounts)
    rows = np.arange(start * n_accounts, n_dates * n_accounts)  # a fold: the later dates
    if len(rows) == 0:
        return
    kept = account_sample(codes, rows, seed, limit)
    if len(rows) <= limit:
        assert kept is rows  # nothing to do below the limit
        return
    assert np.all(np.isin(kept, rows)) and np.all(np.diff(kept) > 0)
    inside = set(accounts[kept])  # every row of a chosen account, none of the others
    assert set(rows[np.isin(accounts[rows], list(inside))]) == set(kept)
    assert np.array_equal(kept, account_sample(codes, rows, seed, limit))  # seeded
    every = account_sample(codes, None, seed, limit)  # all rows: a smaller share of accounts
    assert set(accounts[every]) <= inside


def test_the_account_sample_is_near_the_limit_on_a_large_book():
    codes = account_codes(np.tile(np.arange(20_000), 17))  # 340,000 rows
    kept = account_sample(codes, None, seed=42, limit=100_000)
    assert len(kept) % 17 == 0  # whole accounts
    assert abs(len(kept) - 100_000) < 4 * np.sqrt(100_000 * 17)  # binomial over accounts


def test_above_the_limit_the_logistic_fits_are_those_of_the_account_sample(monkeypatch):
    df, y = book(60, 12, seed=1, nonlinear=False)
    monkeypatch.setattr(selection_module, "LOGISTIC_MAX_ROWS", 200)
    estimator, selection = run(df, y)
    assert selection.chosen == "logistic"
    schema = FeatureSchema.infer(df, ["a", "b", "noise"])
    codes = account_codes(df["account_id"])
    tr, va = first_fold_rows(df, selection)
    sample = account_sample(codes, tr, 7)
    assert 0 < len(sample) < len(tr)
    by_hand = logistic_baseline(schema, 7).fit(df.iloc[sample], y[sample])
    np.testing.assert_array_equal(selection.oof[: len(va)],
                                  by_hand.predict_proba(df.iloc[va])[:, 1])
    everything = account_sample(codes, None, 7)
    refit = logistic_baseline(schema, 7).fit(df.iloc[everything], y[everything])
    np.testing.assert_array_equal(estimator.linear.predict_proba(df)[:, 1],
                                  refit.predict_proba(df)[:, 1])


# --- every tree fit of a large book at the book's rate (training.models.book_params) -------


def test_a_large_book_fits_its_folds_and_refit_at_one_rate_the_book_s(monkeypatch):
    df, y = book(150, 12, seed=2, nonlinear=True)  # 1,800 rows
    schema = FeatureSchema.infer(df, ["a", "b", "noise"])
    x = model_matrix(df, schema)
    _, as_always = select_and_refit(x, y, df["as_of"], df["account_id"], schema, 90, 7)
    assert as_always.as_json()["lightgbm_setting"]["book"] == {}
    monkeypatch.setattr(models_module, "LARGE_BOOK_ROWS", 900)  # 1,800 rows: 0.03 x 2
    estimator, selection = select_and_refit(x, y, df["as_of"], df["account_id"], schema, 90, 7)
    rate = {"learning_rate": 0.06, "early_stopping_rounds": 50}
    assert selection.as_json()["lightgbm_setting"]["book"] == rate
    # fold 1 (~600 rows, below the patched limit itself) at the book's rate, not its own
    tr, va = first_fold_rows(df, selection)
    assert len(tr) < 900
    shared = lightgbm_dataset(x, y, schema, seed=7)
    by_hand = train_booster(shared.subset(tr), len(tr), shared.subset(va), seed=7,
                            params={**selection.tree_setting.params, **rate})
    assert selection.chosen == "lightgbm"
    np.testing.assert_array_equal(selection.oof[: len(va)], by_hand.predict(x[va]))
    assert selection.fold_rounds[0] == max(1, round(by_hand.best_iteration * len(y) / len(tr)))
    # the refit: the one-off fit of the whole book, which takes the same rate by itself
    alone = fit_lightgbm(df, y, None, None, schema, seed=7,
                         params={**selection.tree_setting.params,
                                 "num_boost_round": selection.final_rounds})
    assert "[learning_rate: 0.06]" in alone.model_to_string()
    assert estimator.booster.model_to_string() == alone.model_to_string()
    # reproducible
    again = select_and_refit(x, y, df["as_of"], df["account_id"], schema, 90, 7)[1]
    assert again.as_json() == selection.as_json()
    np.testing.assert_array_equal(again.oof, selection.oof)


def test_the_exported_linear_terms_are_centred_on_the_rows_the_logistic_was_fitted_on(
        monkeypatch):
    df, y = book(60, 12, seed=1, nonlinear=False)
    df["seg"] = np.where(df["b"] > 0.5, "x", np.where(df["b"] < -0.5, "y", "z"))
    schema = FeatureSchema.infer(df, ["a", "noise", "seg"])
    x = model_matrix(df, schema)
    data = selection_module.FoldData.build(x, y, schema, 7, df["account_id"])
    small = selection_module.refit("logistic", data, 0.0, 1)
    assert small.linear_export == export_linear(small.linear, schema, x)  # below the limit
    monkeypatch.setattr(selection_module, "LOGISTIC_MAX_ROWS", 200)
    sample = data.logistic_rows()
    assert 0 < len(sample) < len(y)
    estimator = selection_module.refit("logistic", data, 0.0, 1)
    assert estimator.linear_export == export_linear(estimator.linear, schema, x[sample])
    assert estimator.linear_export != export_linear(estimator.linear, schema, x)


# --- the matrix handed over: freed before the refit's trees -------------------------------


@pytest.mark.parametrize(("nonlinear", "seed", "chosen"),
                         [(True, 2, "lightgbm"), (False, 1, "logistic")])
def test_a_handed_over_matrix_is_freed_and_every_model_is_the_same(nonlinear, seed, chosen):
    df, y = book(150 if nonlinear else 60, 12, seed=seed, nonlinear=nonlinear)
    schema = FeatureSchema.infer(df, ["a", "b", "noise"])
    x = model_matrix(df, schema)
    kept, kept_selection = select_and_refit(x, y, df["as_of"], df["account_id"], schema, 90, 7)
    holder = HandedOver(x.copy())
    estimator, selection = select_and_refit(holder, y, df["as_of"], df["account_id"], schema,
                                            90, 7)
    assert holder.x is None  # the selection held the only reference and dropped it
    assert selection.chosen == kept_selection.chosen == chosen
    assert selection.as_json() == kept_selection.as_json()
    np.testing.assert_array_equal(selection.oof, kept_selection.oof)
    np.testing.assert_array_equal(estimator.predict_raw(to_model_frame(df, schema)),
                                  kept.predict_raw(to_model_frame(df, schema)))
    # the logistic regression refitted whichever wins: the baseline the training reports
    baseline = fit_logistic_rows(x, y, account_codes(df["account_id"]), schema, 7)
    for s in (selection, kept_selection):
        np.testing.assert_array_equal(s.logistic.predict_proba(x)[:, 1],
                                      baseline.predict_proba(x)[:, 1])
    if chosen == "logistic":
        assert selection.logistic is estimator.linear


def test_no_logistic_fit_after_the_matrix_is_released():
    df, y = book(60, 12, seed=1, nonlinear=False)
    schema = FeatureSchema.infer(df, ["a", "b", "noise"])
    data = selection_module.FoldData.build(model_matrix(df, schema), y, schema, 7,
                                           df["account_id"])
    data.release_matrix()
    with pytest.raises(ValueError, match="matrix was released"):
        data.fit_logistic()
    assert data.fit_lightgbm(None, params={"num_boost_round": 3}).num_trees() == 3


def test_a_fold_subset_holds_its_rows_as_one_int32_array():
    df, y = book(60, 12, seed=1, nonlinear=False)
    schema = FeatureSchema.infer(df, ["a", "b", "noise"])
    data = selection_module.FoldData.build(model_matrix(df, schema), y, schema, 7)
    rows = np.arange(100, 400)
    subset = data.lightgbm_rows(rows)
    assert subset.used_indices.dtype == np.int32
    np.testing.assert_array_equal(subset.used_indices, rows)
    np.testing.assert_array_equal(subset.construct().get_label(), y[rows])
