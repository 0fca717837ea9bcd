"""Cross-sell monitoring on hand-made pairs: the bootstrap that draws whole accounts, the
check of re-scored pairs against the history, the offer shares, and the label-free estimate
of calibrated cross-sell probabilities against the realised AUC, per product and pooled."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.monitoring import cross_sell as xs
from serving.monitoring import performance as perf
from serving.monitoring.monitor import _run_performance
from serving.settings import ServingSettings


@given(st.lists(st.integers(0, 6), min_size=1, max_size=40), st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_the_account_bootstrap_draws_whole_accounts(accounts, seed):
    """Every draw is as many accounts as there are, each with all of its rows."""
    accounts = np.array([f"a{a}" for a in accounts])
    rows_of = {a: sorted(np.nonzero(accounts == a)[0].tolist()) for a in set(accounts)}
    draw = perf.account_resampler(accounts, np.random.default_rng(seed))
    for _ in range(3):
        rows = draw()
        drawn = pd.Series(accounts[rows]).value_counts()
        assert sum(drawn[a] // len(rows_of[a]) for a in drawn.index) == len(rows_of)
        for a in drawn.index:
            assert drawn[a] % len(rows_of[a]) == 0
            assert sorted(set(rows[accounts[rows] == a].tolist())) == rows_of[a]


def test_one_row_per_account_keeps_the_row_bootstrap():
    y = np.array([1.0, 0, 1, 0, 0, 1, 0, 0])
    p = np.array([0.9, 0.2, 0.6, 0.4, 0.1, 0.7, 0.3, 0.5])
    ones = np.ones(8)
    rows = perf.bootstrap_intervals(y, p, ones, ones, 50, seed=3)
    assert rows == perf.bootstrap_intervals(y, p, ones, ones, 50, seed=3, accounts=None)
    clustered = perf.bootstrap_intervals(y, p, ones, ones, 50, seed=3,
                                         accounts=np.repeat(np.arange(4), 2))
    assert set(clustered) == set(rows) and clustered != rows


def test_next_best_gap_compares_each_accounts_best_pair_with_the_run():
    pairs = pd.DataFrame({"account_id": ["a", "a", "b", "c"], "product": ["x", "y", "x", "y"],
                          "p": [0.1, 0.3, 0.2, 0.05]})
    run = pd.DataFrame({"account_id": ["a", "b", "c", "d"],
                        "next_best_product_probability": [0.3, 0.2, 0.05, None]})
    assert xs.next_best_gap(pairs, run) == 0.0
    run.loc[1, "next_best_product_probability"] = 0.25
    assert xs.next_best_gap(pairs, run) == pytest.approx(0.05)
    run.loc[3, "next_best_product_probability"] = 0.4  # a best the pairs do not have
    assert xs.next_best_gap(pairs, run) == np.inf
    assert np.isnan(xs.next_best_gap(pairs, run.assign(next_best_product_probability=None)))


def test_offer_shares_count_accounts_with_a_likely_offer():
    pairs = pd.DataFrame({"account_id": ["a", "a", "b", "c"], "product": ["x", "y", "x", "y"],
                          "p": [0.1, 0.3, 0.2, 0.05]})
    # 5 accounts: a (0.3), b (0.2) likely (>= 0.15); c unlikely; two hold every product
    assert xs.offer_shares(pairs, 5) == {"likely": 0.4, "unlikely": 0.2, "none": 0.4}


def _context() -> SimpleNamespace:
    return SimpleNamespace(settings=ServingSettings(data_dir="unused", monitor_bootstrap=100,
                                                    monitor_simulations=100))


def test_pooled_cross_sell_rows_by_hand():
    """Two accounts, two products: pooled AUC over the four pairs and the count of accounts."""
    scored = pd.DataFrame({"account_id": ["a", "a", "b", "b"], "segment": "SMB",
                           "product": ["x", "y", "x", "y"], "p": [0.8, 0.3, 0.4, 0.1],
                           "exposure": [100.0, 50, 100, 50]})
    labels = pd.DataFrame({"account_id": ["a", "a", "b", "b"], "product": ["x", "y", "x", "y"],
                           "label": [1, 0, 0, 1], "value": [120.0, 0, 0, 60],
                           "arr_at_as_of": [1000.0, 1000, 500, 500]})
    row = _run_performance(_context(), "cross-sell", date(2025, 1, 1), 90, scored, True,
                           labels, by_account=True)
    # positives 0.8, 0.1 against negatives 0.3, 0.4: 0.8 beats both, 0.1 neither -> 2 / 4
    assert row["roc_auc"] == 0.5 and row["accounts"] == 2 and row["labelled"] == 4
    # top 10 % of 4 pairs = 1 pair: by p x exposure, 80 (a, x) -> 120 of 180 captured
    assert row["revenue_capture_at_10"] == pytest.approx(120 / 180)
    assert row["estimated_roc_auc"] == pytest.approx(perf.expected_roc_auc(scored["p"]))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_estimate_of_calibrated_cross_sell_scores_is_within_its_stated_error(seed):
    """Pairs whose outcomes are drawn from their own probabilities (a calibrated score by
    construction; rare adoptions, products of different base rates, several products per
    account): the realised AUC of every product and of the pool is within 3 stated standard
    deviations of the estimate, and the realised ECE below 3 x its chance level."""
    rng = np.random.default_rng(seed)
    accounts, products = 1500, {"x": -3.0, "y": -2.2, "z": -3.6}
    frames = []
    for product, base in products.items():
        held = rng.random(accounts) < 0.3
        logit = base + 1.2 * rng.standard_normal(accounts)
        frames.append(pd.DataFrame({"account_id": [f"a{i}" for i in range(accounts)],
                                    "segment": rng.choice(["SMB", "MM"], accounts),
                                    "product": product, "p": 1 / (1 + np.exp(-logit)),
                                    "exposure": 1000.0})[~held])
    scored = pd.concat(frames, ignore_index=True)
    labels = scored[["account_id", "product"]].assign(
        label=(rng.random(len(scored)) < scored["p"]).astype(int), arr_at_as_of=1000.0)
    labels["value"] = labels["label"] * 500.0
    ctx = _context()
    rows = [_run_performance(ctx, "cross-sell", date(2025, 1, 1), 90, scored, True, labels,
                             by_account=True)]
    rows += [_run_performance(ctx, "cross-sell", date(2025, 1, 1), 90,
                              part.reset_index(drop=True), True, labels)
             for _, part in scored.groupby("product")]
    for row in rows:
        gap = abs(row["roc_auc"] - row["estimated_roc_auc"]) / row["estimated_roc_auc_sd"]
        assert gap < 3, (seed, row["roc_auc"], row["estimated_roc_auc"])
        assert row["ece"] < 3 * row["expected_ece"]
