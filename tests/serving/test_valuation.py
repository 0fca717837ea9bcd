"""Valuation: risk tiers, money figures and the suggested play, worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.valuation import (
    OUTPUT_COLUMNS,
    ValueModel,
    risk_tier,
    suggested_play,
    value_accounts,
    value_columns,
)

UPSELL = ValueModel.from_meta(
    {"value": {"kind": "arr_ratio", "overall": 0.2, "by": "segment",
               "groups": {"enterprise": 0.1, "SMB": 0.5}}})
CROSS = ValueModel.from_meta(
    {"value": {"kind": "amount", "overall": 1000.0, "by": "candidate_product",
               "groups": {"analytics": 3000.0}}})


@pytest.mark.parametrize(("p", "tier"), [
    (0.0, "low"), (0.05, "low"), (0.0999, "low"),
    (0.10, "medium"), (0.2, "medium"), (0.2999, "medium"),
    (0.30, "high"), (0.3001, "high"), (1.0, "high"),
    (np.nan, None),
])
def test_risk_tier_thresholds(p, tier):
    assert risk_tier(np.array([p])).tolist() == [tier]


def test_risk_tier_keeps_the_shape_and_order():
    assert risk_tier([0.31, np.nan, 0.1, 0.01]).tolist() == ["high", None, "medium", "low"]


def _play(tier, upsell_p, cross_p, expansion, cross_arr) -> str:
    return suggested_play(np.array([tier], dtype=object), np.array([upsell_p]),
                          np.array([cross_p]), np.array([expansion]), np.array([cross_arr]))[0]


@pytest.mark.parametrize(("args", "play"), [
    # high risk: retention whatever else is likely
    (("high", 0.9, 0.9, 1e6, 2e6), "retention"),
    (("high", np.nan, np.nan, np.nan, np.nan), "retention"),
    # both likely enough: the larger expected ARR wins, a tie stays expansion
    (("medium", 0.5, 0.5, 1000.0, 500.0), "expansion"),
    (("low", 0.5, 0.5, 1000.0, 2000.0), "cross-sell"),
    (("low", 0.5, 0.5, 1000.0, 1000.0), "expansion"),
    # only one likely enough (thresholds are inclusive): that one, whatever the money
    (("low", 0.19, 0.15, 1e6, 10.0), "cross-sell"),
    (("low", 0.20, 0.1499, 10.0, 1e6), "expansion"),
    # neither likely enough, or unknown: nurture
    (("low", 0.19, 0.14, 1e6, 1e6), "nurture"),
    (("medium", 0.0, 0.0, 0.0, 0.0), "nurture"),
    ((None, np.nan, np.nan, np.nan, np.nan), "nurture"),
])
def test_suggested_play_rules(args, play):
    assert _play(*args) == play


def test_value_model_from_meta_and_per_row_lookup():
    assert ValueModel.from_meta(None) == ValueModel(0.0, ())
    assert ValueModel.from_meta({"value": {"kind": "arr"}}) == ValueModel(0.0, ())
    assert (UPSELL.overall, UPSELL.groups) == (0.2, (("SMB", 0.5), ("enterprise", 0.1)))
    keys = np.array(["SMB", "mid-market", None, "enterprise"], dtype=object)
    np.testing.assert_array_equal(UPSELL.per_row(keys), [0.5, 0.2, 0.2, 0.1])
    assert UPSELL.per_row(np.array([], dtype=object)).shape == (0,)


def hand_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "account_id": ["A", "B", "C", "D"],
        "arr": [12000.0, 50000.0, 1234.56, 8000.0],
        "segment": ["SMB", "enterprise", "mid-market", None],
        "churn_probability": [0.35, 0.05, 0.123456, np.nan],
        "upsell_probability": [0.1, 0.4, 0.25, np.nan],
        "next_best_product": ["analytics", "support", "analytics", None],
        "next_best_product_probability": [0.2, 0.3, 0.5, np.nan],
    })


EXPECTED = {
    "risk_tier": ["high", "low", "medium", None],
    # ARR x P(churn): 12000 x 0.35; 50000 x 0.05; 1234.56 x 0.123456 = 152.41383936; unknown
    "arr_at_risk": [4200.0, 2500.0, 152.41, np.nan],
    # P(upsell) x ARR x segment ratio: 0.1 x 12000 x 0.5; 0.4 x 50000 x 0.1;
    # 0.25 x 1234.56 x 0.2 (mid-market unknown: overall) = 61.728; unknown
    "expected_expansion": [600.0, 2000.0, 61.73, np.nan],
    # P(adopt) x product amount: 0.2 x 3000; 0.3 x 1000 (support unknown: overall); 0.5 x 3000
    "expected_cross_sell_arr": [600.0, 300.0, 1500.0, np.nan],
    # high risk; both likely, expansion larger; both likely, cross-sell larger; nothing known
    "play": ["retention", "expansion", "cross-sell", "nurture"],
}


def _columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {
        "arr": frame["arr"].to_numpy(),
        "segment": frame["segment"].to_numpy(dtype=object),
        "churn_probability": frame["churn_probability"].to_numpy(),
        "upsell_probability": frame["upsell_probability"].to_numpy(),
        "next_best_product": frame["next_best_product"].to_numpy(dtype=object),
        "next_best_product_probability": frame["next_best_product_probability"].to_numpy(),
    }


def test_value_columns_hand_worked_money():
    out = value_columns(_columns(hand_frame()), UPSELL, CROSS)
    assert set(out) == set(OUTPUT_COLUMNS)
    for name, expected in EXPECTED.items():
        if name in ("risk_tier", "play"):
            assert out[name].tolist() == expected, name
        else:
            np.testing.assert_array_equal(out[name], expected, err_msg=name)


def test_value_columns_rounds_money_to_cents():
    cols = {"arr": np.array([1000.0]), "segment": np.array(["x"], dtype=object),
            "churn_probability": np.array([0.123456789]),
            "upsell_probability": np.array([1 / 3]),
            "next_best_product": np.array(["p"], dtype=object),
            "next_best_product_probability": np.array([2 / 3])}
    out = value_columns(cols, ValueModel(1.0), ValueModel(10.0))
    assert out["arr_at_risk"].tolist() == [123.46]
    assert out["expected_expansion"].tolist() == [333.33]
    assert out["expected_cross_sell_arr"].tolist() == [6.67]


def test_value_accounts_equals_value_columns_and_keeps_the_frame():
    frame = hand_frame()
    out = value_accounts(frame, UPSELL, CROSS)
    expected = value_columns(_columns(frame), UPSELL, CROSS)
    pd.testing.assert_frame_equal(out[list(frame.columns)], frame)
    for name, values in expected.items():
        np.testing.assert_array_equal(out[name].to_numpy(), values, err_msg=name)
    assert out["risk_tier"].tolist() == EXPECTED["risk_tier"]


@given(
    arr=st.floats(min_value=0, max_value=1e10, allow_nan=False),
    p=st.floats(min_value=0, max_value=1, allow_nan=False),
)
def test_arr_at_risk_is_between_zero_and_arr(arr, p):
    cols = {"arr": np.array([arr]), "segment": np.array([None], dtype=object),
            "churn_probability": np.array([p]), "upsell_probability": np.array([np.nan]),
            "next_best_product": np.array([None], dtype=object),
            "next_best_product_probability": np.array([np.nan])}
    at_risk = value_columns(cols, ValueModel(), ValueModel())["arr_at_risk"][0]
    # money is rounded to cents, so the bound is the ARR in cents
    assert 0.0 <= at_risk <= np.round(arr, 2)


@given(
    cents=st.integers(min_value=0, max_value=10**12),
    p=st.floats(min_value=0, max_value=1, allow_nan=False),
)
def test_arr_at_risk_never_exceeds_an_arr_in_cents(cents, p):
    arr = cents / 100
    cols = {"arr": np.array([arr]), "segment": np.array(["SMB"], dtype=object),
            "churn_probability": np.array([p]), "upsell_probability": np.array([p]),
            "next_best_product": np.array(["core"], dtype=object),
            "next_best_product_probability": np.array([p])}
    at_risk = value_columns(cols, ValueModel(), ValueModel())["arr_at_risk"][0]
    assert 0.0 <= at_risk <= arr
