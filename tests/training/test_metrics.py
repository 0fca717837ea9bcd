"""Metrics on small hand-made arrays, values worked out by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics import (
    compare,
    evaluate,
    expected_calibration_error,
    lift_at,
    lift_table,
    recall_at,
    value_capture_at,
)

# Ten rows ranked by score; positives at ranks 1, 3 and 6 (scores 0.9, 0.7, 0.4).
Y = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0])
P = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])


def test_evaluate_hand_worked_values():
    m = evaluate(Y, P)
    # AUC: positive 0.9 beats all 7 negatives, 0.7 beats 6 (not 0.8), 0.4 beats 4 -> 17 / 21.
    assert m["roc_auc"] == pytest.approx(17 / 21)
    # AP: precision at each positive's rank: 1/1, 2/3, 3/6 -> mean 13/18.
    assert m["pr_auc"] == pytest.approx(13 / 18)
    # Brier: squared errors .01 .64 .09 .36 .25 .36 .09 .04 .01 .0025 -> 1.8525 / 10.
    assert m["brier"] == pytest.approx(0.18525)
    probs_of_truth = [0.9, 0.2, 0.7, 0.4, 0.5, 0.4, 0.7, 0.8, 0.9, 0.95]
    assert m["log_loss"] == pytest.approx(-sum(math.log(q) for q in probs_of_truth) / 10)
    # Each score falls in its own tenth, so ECE is the mean |y - p| = 3.55 / 10.
    assert m["ece"] == pytest.approx(0.355)
    # Top 5 % and top 10 % of 10 rows are both ceil(...) = 1 row: the positive 0.9.
    # Rate 1 / overall 0.3 -> lift 10/3; recall 1/3.
    assert m["lift_at_5"] == pytest.approx(10 / 3)
    assert m["lift_at_10"] == pytest.approx(10 / 3)
    assert m["recall_at_5"] == pytest.approx(1 / 3)
    assert m["recall_at_10"] == pytest.approx(1 / 3)
    # Top 20 % = 2 rows, 1 positive: rate 0.5 -> lift 5/3; recall 1/3.
    assert m["lift_at_20"] == pytest.approx(5 / 3)
    assert m["recall_at_20"] == pytest.approx(1 / 3)
    assert m["positive_rate"] == pytest.approx(0.3)
    assert m["n"] == 10
    assert "value_capture_at_10" not in m


def test_value_capture_ranks_by_expected_value_and_counts_positives_only():
    # Negatives carry a large value that must be ignored; positives hold 100 + 50 + 300 = 450.
    value = np.array([100, 999, 50, 999, 999, 300, 0, 0, 0, 0])
    # By p alone the top row (k = 1) is row 0, a positive worth 100 -> 100 / 450 = 2/9.
    assert evaluate(Y, P, value=value)["value_capture_at_10"] == pytest.approx(2 / 9)
    # Exposure 10 on row 5 makes its expected value 0.4 * 10 = 4, the highest: 300 / 450.
    exposure = np.ones(10)
    exposure[5] = 10
    m = evaluate(Y, P, value=value, exposure=exposure)
    assert m["value_capture_at_10"] == pytest.approx(2 / 3)


def test_value_capture_nan_when_positives_carry_no_value():
    assert math.isnan(value_capture_at(Y, P, np.zeros(10)))


def test_value_capture_rejects_negative_value():
    with pytest.raises(ValueError, match="non-negative"):
        value_capture_at(Y, P, -np.ones(10))


def test_exposure_without_value_is_refused():
    with pytest.raises(ValueError, match="give value"):
        evaluate(Y, P, exposure=np.ones(10))


def test_perfect_ranking():
    # 30 rows, 3 positives with the 3 highest scores: top 10 % is exactly those 3 rows.
    y = np.zeros(30)
    y[[4, 11, 25]] = 1
    p = np.linspace(0.01, 0.5, 30)
    p[[4, 11, 25]] = [0.9, 0.8, 0.7]
    m = evaluate(y, p)
    assert m["roc_auc"] == 1.0
    assert m["pr_auc"] == pytest.approx(1.0)
    # ceil(10 * 30 / 100) = 3 rows (not 4, which 0.1 * 30 = 3.0000000000000004 would give).
    assert m["lift_at_10"] == pytest.approx(10.0)
    assert m["recall_at_10"] == pytest.approx(1.0)
    # Top 5 % = ceil(1.5) = 2 rows, both positive: lift (2/2) / 0.1 = 10, recall 2/3.
    assert m["lift_at_5"] == pytest.approx(10.0)
    assert m["recall_at_5"] == pytest.approx(2 / 3)
    # Top 20 % = 6 rows holding all 3 positives: lift 0.5 / 0.1 = 5.
    assert m["lift_at_20"] == pytest.approx(5.0)


def test_random_ranking_is_near_chance():
    rng = np.random.default_rng(7)
    y = rng.random(20_000) < 0.2
    m = evaluate(y, rng.random(20_000))
    assert m["roc_auc"] == pytest.approx(0.5, abs=0.02)
    assert m["lift_at_10"] == pytest.approx(1.0, abs=0.1)
    assert m["recall_at_20"] == pytest.approx(0.2, abs=0.02)


def test_constant_score_has_lift_exactly_one_whatever_the_row_order():
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    p = np.full(10, 0.3)
    for order in (y, y[::-1]):
        assert lift_at(order, p, 10) == pytest.approx(1.0)
        assert recall_at(order, p, 20) == pytest.approx(0.2)


def test_ties_at_the_cut_off_share_it():
    # Row 0 (0.9, negative) is alone at the top; rows 1-4 tie at 0.5 and hold one positive.
    # Top 20 % = 2 rows: row 0 plus 1 of the 4 tied places -> 1/4 of a positive.
    y = np.array([0, 0, 0, 1, 0, 0, 0, 0, 0, 1])
    p = np.array([0.9, 0.5, 0.5, 0.5, 0.5, 0.3, 0.2, 0.2, 0.1, 0.05])
    # Recall 0.25 / 2 positives; lift (0.25 / 2 rows) / 0.2 = 0.625.
    assert recall_at(y, p, 20) == pytest.approx(0.125)
    assert lift_at(y, p, 20) == pytest.approx(0.625)
    # Moving the positive inside the tie group changes nothing.
    y2 = np.array([0, 1, 0, 0, 0, 0, 0, 0, 0, 1])
    assert recall_at(y2, p, 20) == pytest.approx(0.125)
    # Reversing the rows changes nothing either.
    assert recall_at(y[::-1], p[::-1], 20) == pytest.approx(0.125)


def test_single_class_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="single class"):
        evaluate(np.zeros(5), np.linspace(0, 1, 5))
    with pytest.raises(ValueError, match="single class"):
        evaluate(np.ones(5), np.linspace(0, 1, 5))


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 1], [0.5], "rows"),
        ([0, 2], [0.1, 0.9], "only 0 and 1"),
        ([0, 1], [0.1, 1.5], r"\[0, 1\]"),
        ([0, 1], [0.1, float("nan")], "finite"),
        ([], [], "no rows"),
    ],
)
def test_bad_input_is_refused(y, p, message):
    with pytest.raises(ValueError, match=message):
        evaluate(np.array(y), np.array(p, dtype=float))


def test_ece_groups_rows_by_bin():
    # Bins (width 0.1): 0.12 and 0.18 -> bin 1; 0.85 -> bin 8; 0.95 -> bin 9.
    # |1 - 0.30| + |1 - 0.85| + |0 - 0.95| = 0.7 + 0.15 + 0.95 = 1.8, over 4 rows.
    y = np.array([0, 1, 1, 0])
    p = np.array([0.12, 0.18, 0.85, 0.95])
    assert expected_calibration_error(y, p) == pytest.approx(0.45)
    # Quantile, 2 bins: {0.12, 0.18} and {0.85, 0.95}: (|1 - 0.3| + |1 - 1.8|) / 4 = 0.375.
    assert expected_calibration_error(y, p, n_bins=2, strategy="quantile") == pytest.approx(0.375)
    # 1.0 joins the last bin instead of falling off the end.
    assert expected_calibration_error(np.array([1]), np.array([1.0])) == 0.0


def test_lift_table():
    t = lift_table(Y, P, n_bins=5)
    # Bins of 2 rows: positives at ranks 1, 3, 6 -> 1, 1, 1, 0, 0.
    assert t["decile"].tolist() == [1, 2, 3, 4, 5]
    assert t["count"].tolist() == [2, 2, 2, 2, 2]
    assert t["positives"].tolist() == pytest.approx([1, 1, 1, 0, 0])
    assert t["rate"].tolist() == pytest.approx([0.5, 0.5, 0.5, 0, 0])
    assert t["lift"].tolist() == pytest.approx([5 / 3, 5 / 3, 5 / 3, 0, 0])
    assert t["cumulative_gain"].tolist() == pytest.approx([1 / 3, 2 / 3, 1, 1, 1])


def test_lift_table_first_decile_matches_lift_at_10():
    rng = np.random.default_rng(3)
    y = (rng.random(237) < 0.3).astype(int)
    p = np.round(rng.random(237), 1)  # many ties
    t = lift_table(y, p)
    assert t["count"].sum() == 237
    assert t["positives"].sum() == pytest.approx(y.sum())
    assert t["lift"].iloc[0] == pytest.approx(lift_at(y, p, 10))


def test_compare_gives_model_minus_baseline():
    model = {"roc_auc": 0.80, "pr_auc": 0.40, "brier": 0.10, "ece": 0.01, "lift_at_10": 3.0}
    base = {"roc_auc": 0.70, "pr_auc": 0.30, "brier": 0.12, "ece": 0.05, "lift_at_10": 2.0}
    d = compare(model, base)
    assert d == pytest.approx(
        {"roc_auc": 0.10, "pr_auc": 0.10, "brier": -0.02, "ece": -0.04, "lift_at_10": 1.0}
    )
    assert compare(model, base, keys=("roc_auc",)) == pytest.approx({"roc_auc": 0.10})
    with pytest.raises(KeyError, match="log_loss"):
        compare(model, base, keys=("log_loss",))
