"""The fitted health scorecard (sub-scores, signs checked on the training rows, weights) and the
map of the customer's own health score to a probability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from training.baselines import (
    CHURN_MEASURES,
    Measure,
    fit_customer_score,
    fit_scorecard,
    reference_columns,
    reference_scores,
    task_measures,
)


def test_sub_scores_are_mid_rank_percentiles_of_the_training_values():
    train = pd.DataFrame({"up": [1.0, 2.0, 2.0, 3.0], "down": [1.0, 2.0, 2.0, 3.0]})
    card = fit_scorecard(train, np.array([0, 0, 1, 1]),
                         (Measure("up", +1, "a"), Measure("down", -1, "b")))
    rows = pd.DataFrame({"up": [1.0, 2.0, 3.0, 0.5, 9.0, None],
                         "down": [1.0, 2.0, 3.0, 0.5, 9.0, None]})
    subs = card.sub_scores(rows)
    # 1: 0 below, 1 equal of 4 -> (0 + 1) / 8 = 12.5; 2: (1 + 3) / 8 = 50; 3: 87.5;
    # below every training value 0, above 100; missing: neutral 50
    np.testing.assert_allclose(subs["up"], [12.5, 50, 87.5, 0, 100, 50])
    # "down" is expected to lower the label: turned, so 100 still points toward the label
    # ("up" and "down" hold the same values here, so one of them is flipped by the data)
    assert card.flipped == ["down"]
    np.testing.assert_allclose(subs["down"], [12.5, 50, 87.5, 0, 100, 50])


def test_absent_constant_and_all_null_measures_are_skipped():
    train = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "const": [5.0] * 4,
                          "empty": [np.nan] * 4})
    y = np.array([0, 0, 1, 1])
    measures = tuple(Measure(c, +1, c) for c in ("a", "const", "empty", "absent"))
    card = fit_scorecard(train, y, measures)
    assert card.skipped == ["const", "empty", "absent"]
    assert card.weights == {"a": 100.0}  # the one informative measure carries the card
    assert list(card.sub_scores(train).columns) == ["a"]


def _churn_book(n: int = 4000, seed: int = 7) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "usage_trend_30d": rng.uniform(0.3, 1.5, n),
        "nps_last": rng.integers(0, 11, n).astype(float),
        "tickets_90d": rng.poisson(2, n).astype(float),  # no effect on churn
    })
    logit = -3.0 * (df["usage_trend_30d"] - 0.9) - 0.4 * (df["nps_last"] - 7) - 2.0
    return df, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


def test_signs_follow_the_expected_directions_when_the_data_agree():
    df, y = _churn_book()
    card = fit_scorecard(df, y, CHURN_MEASURES)
    assert card.flipped == [] or card.flipped == ["tickets_90d"]  # noise may go either way
    assert card.direction["usage_trend_30d"] == -1 and card.direction["nps_last"] == -1
    assert card.weights["usage_trend_30d"] > 20 and card.weights["nps_last"] > 20
    assert sum(card.weights.values()) == pytest.approx(100.0)
    assert all(w >= 0 for w in card.weights.values())
    assert roc_auc_score(y, card.predict_proba(df)) > 0.75
    # the ranking of the probability is the card's
    assert roc_auc_score(y, card.points(df)) == pytest.approx(
        roc_auc_score(y, card.predict_proba(df)))


def test_a_signal_inverted_on_purpose_is_flipped_not_used_backwards():
    df, y = _churn_book()
    df["nps_last"] = 10 - df["nps_last"]  # high NPS now goes with churn
    card = fit_scorecard(df, y, CHURN_MEASURES)
    assert "nps_last" in card.flipped and card.direction["nps_last"] == +1
    assert card.weights["nps_last"] > 20
    assert roc_auc_score(y, card.predict_proba(df)) > 0.75
    # a fixed card with the expected sign would rank below chance on NPS alone
    assert roc_auc_score(y, df["nps_last"].rank()) > 0.5


def test_a_measure_that_only_cancels_a_correlated_one_gets_no_weight():
    rng = np.random.default_rng(3)
    n = 5000
    a = rng.normal(size=n)
    b = a + 0.5 * rng.normal(size=n)  # on its own it ranks like a, with less skill
    logit = 3 * a - 1.5 * b  # given a, more b means fewer labels
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    df = pd.DataFrame({"a": a, "b": b})
    assert roc_auc_score(y, b) > 0.5  # so its univariate sign is +1, not flipped
    card = fit_scorecard(df, y, (Measure("a", +1, "a"), Measure("b", +1, "b")))
    assert card.flipped == []
    assert card.weights == {"a": 100.0, "b": 0.0}


@pytest.mark.parametrize("seed", range(5))
def test_never_below_chance_on_the_training_rows(seed):
    rng = np.random.default_rng(seed)
    n = 300
    df = pd.DataFrame({m.column: rng.normal(size=n) for m in CHURN_MEASURES})
    df.loc[rng.random(n) < 0.3, "nps_last"] = np.nan
    y = (rng.random(n) < 0.2).astype(int)  # pure noise: every sign is a coin toss
    card = fit_scorecard(df, y, CHURN_MEASURES)
    assert roc_auc_score(y, card.predict_proba(df)) >= 0.5
    assert all(w >= 0 for w in card.weights.values())


def test_no_usable_measure_gives_the_base_rate():
    df = pd.DataFrame({"x": [1, 2, 3, 4]})
    card = fit_scorecard(df, np.array([0, 1, 0, 0]), CHURN_MEASURES)
    np.testing.assert_allclose(card.predict_proba(df), [0.25] * 4)
    assert card.weights == {}


def test_unknown_task():
    assert task_measures("cross-sell") == task_measures("upsell")
    with pytest.raises(ValueError, match="unknown task 'retention'"):
        task_measures("retention")


def test_customer_score_map_learns_its_direction_and_keeps_its_ranking():
    rng = np.random.default_rng(5)
    n = 4000
    health = rng.normal(size=n)
    churned = (rng.random(n) < 1 / (1 + np.exp(2 + 1.5 * health))).astype(int)
    score = 50 + 20 * health  # higher = healthier: churn falls as the score rises
    score[:400] = np.nan  # accounts the customer's tool never scored
    mapped = fit_customer_score(score, churned)
    p = mapped.predict_proba(score)
    known = ~np.isnan(score)
    assert roc_auc_score(churned[known], p[known]) == pytest.approx(
        roc_auc_score(churned[known], -score[known]))  # monotone: the ranking is the score's
    assert roc_auc_score(churned[known], p[known]) > 0.75
    np.testing.assert_allclose(p[~known], churned[:400].mean())  # the unscored rows' rate
    assert abs(p[known].mean() - churned[known].mean()) < 0.005  # calibrated in the large


def test_a_pure_noise_customer_score_ranks_at_chance():
    rng = np.random.default_rng(6)
    n = 20_000
    y = (rng.random(n) < 0.1).astype(int)
    noise = rng.uniform(0, 100, n)
    mapped = fit_customer_score(noise[: n // 2], y[: n // 2])
    assert abs(roc_auc_score(y[n // 2:], mapped.predict_proba(noise[n // 2:])) - 0.5) < 0.03
    assert fit_customer_score(np.full(10, 3.0), np.arange(10) % 2) is None  # nothing to map


def test_reference_scores_without_a_customer_score_table():
    df, y = _churn_book(400)
    parts = {"train": df.assign(label=y), "test": df.head(50).assign(label=y[:50])}
    refs = reference_scores("churn", parts, tables=None, seed=0)
    assert set(refs.scores) == {"health_score"}
    assert len(refs.scores["health_score"]) == 50
    np.testing.assert_allclose(refs.scores["health_score"],
                               refs.scorecard.predict_proba(parts["test"]))


def test_the_references_need_only_their_columns_of_the_training_frame():
    df, y = _churn_book(400)
    df = df.assign(account_id=np.arange(400) % 50, as_of=pd.Timestamp("2024-03-01"),
                   label=y, other_feature=np.arange(400.0), value=1.0)
    parts = {"train": df, "test": df.head(50)}
    whole = reference_scores("churn", parts, tables=None, seed=0)
    columns = reference_columns("churn")
    assert {"account_id", "as_of", "label", "usage_trend_30d", "nps_last"} <= set(columns)
    assert "other_feature" not in columns and "value" not in columns
    few = reference_scores("churn", {"train": df[[c for c in columns if c in df]],
                                     "test": parts["test"]}, tables=None, seed=0)
    np.testing.assert_array_equal(few.scores["health_score"], whole.scores["health_score"])
    assert few.scorecard.weights == whole.scorecard.weights
