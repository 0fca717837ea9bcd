"""Bootstrap intervals over accounts and paired differences (training.uncertainty)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from training.metrics import evaluate
from training.uncertainty import METRICS, _Ranked, bootstrap

# Two accounts, two rows each. Drawing two accounts with replacement gives AA, AB (twice as
# likely as each of the others) or BB; worked out by hand:
#   AA: p .9 .9 .2 .2 / y 1 1 0 0 -> AUC 1,    AP 1,   top row: half of two tied .9: lift 2
#   AB: p .9 .2 .4 .6 / y 1 0 1 0 -> AUC 3/4,  AP (1 + 2/3) / 2 = 5/6, top row positive: lift 2
#   BB: p .4 .4 .6 .6 / y 1 1 0 0 -> AUC 0,    AP 2/4 (positives below negatives), lift 0
TINY_Y = np.array([1, 0, 1, 0])
TINY_P = np.array([0.9, 0.2, 0.4, 0.6])
TINY_ACCOUNTS = np.array(["A", "A", "B", "B"])


def ranked(p, y, codes, n_groups, value=None, exposure=None):
    gained = None if value is None else np.asarray(value, float) * y
    return _Ranked(np.asarray(p, float), np.asarray(y, float), codes, n_groups, gained, exposure)


def test_each_resample_of_the_tiny_fixture_by_hand():
    counts = np.array([[2, 1, 0], [0, 1, 2]], dtype=float)  # columns: AA, AB, BB
    got = ranked(TINY_P, TINY_Y, np.array([0, 0, 1, 1]), 2).metrics(counts)
    np.testing.assert_allclose(got["roc_auc"], [1, 0.75, 0])
    np.testing.assert_allclose(got["pr_auc"], [1, 5 / 6, 0.5])
    np.testing.assert_allclose(got["lift_at_10"], [2, 2, 0])


def test_the_point_is_the_metric_of_the_rows_as_they_are():
    u = bootstrap(TINY_Y, {"model": TINY_P}, TINY_ACCOUNTS, n_resamples=50, seed=1)
    m = u.metrics["model"]
    assert m["roc_auc"].value == pytest.approx(0.75)
    assert m["pr_auc"].value == pytest.approx(5 / 6)
    assert m["lift_at_10"].value == pytest.approx(2)
    # the draws are AA, AB and BB only: the interval's ends are two of 0, 3/4 and 1
    assert 0 <= m["roc_auc"].lo <= m["roc_auc"].hi <= 1
    assert u.groups == 2 and u.n_resamples == 50


def test_resampled_metrics_equal_the_metrics_of_the_repeated_rows():
    """Every resample's metrics, ties and value capture included, are those of the rows
    repeated as often as their account was drawn (training.metrics on the long frame)."""
    rng = np.random.default_rng(3)
    n, accounts = 120, 40
    codes = rng.integers(0, accounts, n)
    y = (rng.random(n) < 0.3).astype(float)
    p = np.round(rng.random(n), 1)  # many ties
    value = rng.random(n) * 100
    exposure = rng.integers(1, 4, n).astype(float)
    counts = rng.integers(0, 3, size=(accounts, 5)).astype(float)
    got = ranked(p, y, codes, accounts, value, exposure).metrics(counts)
    for b in range(counts.shape[1]):
        times = counts[codes, b].astype(int)
        want = evaluate(np.repeat(y, times), np.repeat(p, times), value=np.repeat(value, times),
                        exposure=np.repeat(exposure, times))
        for metric in METRICS:
            assert got[metric][b] == pytest.approx(want[metric], rel=1e-12), (metric, b)


def test_point_values_equal_evaluate_on_a_window():
    rng = np.random.default_rng(4)
    n = 500
    accounts = rng.integers(0, 150, n)
    y = (rng.random(n) < 0.2).astype(int)
    p = np.clip(0.2 * y + rng.random(n) * 0.8, 0, 1)
    value, exposure = rng.random(n) * 10, rng.random(n) * 5
    u = bootstrap(y, {"model": p}, accounts, value=value, exposure=exposure, n_resamples=20)
    want = evaluate(y, p, value=value, exposure=exposure)
    for metric in METRICS:
        assert u.metrics["model"][metric].value == pytest.approx(want[metric], rel=1e-12)


def test_a_score_paired_with_itself_differs_by_exactly_zero():
    rng = np.random.default_rng(5)
    y = (rng.random(300) < 0.3).astype(int)
    p = rng.random(300)
    u = bootstrap(y, {"model": p, "copy": p.copy()}, rng.integers(0, 90, 300),
                  value=rng.random(300), pairs=[("model", "copy")], n_resamples=100, seed=2)
    for metric in METRICS:
        diff = u.differences["model - copy"][metric]
        assert (diff.value, diff.lo, diff.hi) == (0.0, 0.0, 0.0)


def test_a_paired_difference_is_narrower_than_either_interval_and_seeded():
    """Two scores sharing most of their noise: the paired difference's interval is much
    narrower than the width of either candidate's own interval."""
    rng = np.random.default_rng(6)
    n = 2000
    y = (rng.random(n) < 0.3).astype(int)
    shared = rng.normal(size=n)
    scores = {"better": y + shared + 0.3 * rng.normal(size=n),
              "worse": 0.8 * y + shared + 0.3 * rng.normal(size=n)}
    u = bootstrap(y, scores, np.arange(n) // 2, pairs=[("better", "worse")], seed=7)
    diff = u.differences["better - worse"]["roc_auc"]
    own = u.metrics["better"]["roc_auc"]
    assert 0 < diff.lo < diff.value < diff.hi
    assert diff.hi - diff.lo < (own.hi - own.lo) / 2
    again = bootstrap(y, scores, np.arange(n) // 2, pairs=[("better", "worse")], seed=7)
    assert again.differences == u.differences


def test_rows_of_one_account_are_resampled_together():
    """Copying every row three times adds no information: resampling accounts keeps the
    interval of the original rows; resampling rows would pretend otherwise."""
    rng = np.random.default_rng(8)
    n = 600
    y = (rng.random(n) < 0.3).astype(int)
    p = rng.random(n) + 0.3 * y
    single = bootstrap(y, {"m": p}, np.arange(n), seed=9).metrics["m"]["roc_auc"]
    copies = np.tile(np.arange(n), 3)
    by_account = bootstrap(np.tile(y, 3), {"m": np.tile(p, 3)}, copies,
                           seed=9).metrics["m"]["roc_auc"]
    by_row = bootstrap(np.tile(y, 3), {"m": np.tile(p, 3)}, None, seed=9).metrics["m"]["roc_auc"]
    assert (by_account.lo, by_account.hi) == pytest.approx((single.lo, single.hi))
    assert by_row.hi - by_row.lo < 0.7 * (by_account.hi - by_account.lo)


def test_undefined_resamples_are_left_out_and_bad_input_is_refused():
    u = bootstrap(np.array([1, 0]), {"m": np.array([0.8, 0.1])}, n_resamples=200, seed=0)
    # half the draws hold one class only: AUC undefined there; the others are all 1
    assert (u.metrics["m"]["roc_auc"].lo, u.metrics["m"]["roc_auc"].hi) == (1.0, 1.0)
    with pytest.raises(ValueError, match="only 0 and 1"):
        bootstrap(np.array([2, 0]), {"m": np.array([0.8, 0.1])})
    with pytest.raises(KeyError, match="no score named 'b'"):
        bootstrap(np.array([1, 0]), {"m": np.array([0.8, 0.1])}, pairs=[("m", "b")])
    with pytest.raises(ValueError, match="groups has 3 rows"):
        bootstrap(np.array([1, 0]), {"m": np.array([0.8, 0.1])}, np.array([1, 2, 3]))


def test_mlflow_metrics_are_flat_and_named():
    u = bootstrap(TINY_Y, {"model": TINY_P, "logistic": TINY_P[::-1].copy()}, TINY_ACCOUNTS,
                  pairs=[("model", "logistic")], n_resamples=30)
    flat = u.mlflow_metrics({"model": "test_", "logistic": "logistic_test_"})
    assert {"test_roc_auc_lo", "test_roc_auc_hi", "logistic_test_pr_auc_hi",
            "diff_logistic_roc_auc", "diff_logistic_roc_auc_lo"} <= set(flat)
    assert flat["diff_logistic_roc_auc"] == pytest.approx(0.75 - 0.25)


@pytest.mark.slow
def test_the_95_percent_interval_covers_a_known_auc_about_95_percent_of_the_time():
    """Binormal scores: positives ~ N(1, 1), negatives ~ N(0, 1), so the true ROC AUC is
    Phi(1 / sqrt 2) = 0.7602. Each account has two rows sharing its label and 90 % of its score
    variance, so the rows are far from independent (resampling rows instead of accounts covers
    only ~82 % here). Over 400 windows of 400 accounts the account bootstrap covers the truth
    ~94 % of the time (a percentile interval is a little short with ~120 positive accounts);
    with 400 repetitions one standard error is 1.2 points, so [90 %, 98.5 %] is more than three
    standard errors from either side of it, and excludes row resampling by more than six."""
    truth = norm.cdf(1 / np.sqrt(2))
    rng = np.random.default_rng(2024)
    accounts, rows, repetitions = 400, 2, 400
    groups = np.repeat(np.arange(accounts), rows)
    hits = 0
    for r in range(repetitions):
        y = np.repeat((rng.random(accounts) < 0.3).astype(int), rows)
        shared = np.repeat(rng.normal(size=accounts), rows)
        s = y + np.sqrt(0.9) * shared + np.sqrt(0.1) * rng.normal(size=accounts * rows)
        auc = bootstrap(y, {"m": s}, groups, n_resamples=200, seed=r).metrics["m"]["roc_auc"]
        hits += auc.lo <= truth <= auc.hi
    assert 0.90 <= hits / repetitions <= 0.985
