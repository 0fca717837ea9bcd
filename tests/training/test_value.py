"""What a positive outcome is worth: medians of the real positives, by segment or product."""

from __future__ import annotations

import pandas as pd
import pytest

from training.value import MIN_POSITIVES, value_stats


def upsell_rows() -> pd.DataFrame:
    """21 SMB positives (ARR 1000, growth 100..2100: ratios 0.1..2.1), 19 enterprise
    positives (ratio 5), and rows that must not count: negatives, zero growth, zero ARR."""
    smb = pd.DataFrame({"label": 1, "value": [100.0 * i for i in range(1, 22)],
                        "arr_at_as_of": 1000.0, "segment": "SMB"})
    enterprise = pd.DataFrame({"label": 1, "value": [10000.0] * 19, "arr_at_as_of": 2000.0,
                               "segment": "enterprise"})
    ignored = pd.DataFrame({
        "label": [0, 0, 1, 1, 1],
        "value": [90000.0, 0.0, 0.0, -500.0, 70000.0],
        "arr_at_as_of": [1000.0, 1000.0, 1000.0, 1000.0, 0.0],
        "segment": ["SMB", "SMB", "SMB", "SMB", "SMB"],
    })
    return pd.concat([smb, enterprise, ignored], ignore_index=True)


def test_upsell_is_the_median_growth_ratio_by_segment():
    stats = value_stats("upsell", upsell_rows())
    # 40 ratios: 0.1 .. 2.1 then 19 x 5.0; the median is (2.0 + 2.1) / 2
    # enterprise has 19 < MIN_POSITIVES positives: valued with the whole book's figure
    assert stats == {"kind": "arr_ratio", "overall": 2.05, "by": "segment",
                     "groups": {"SMB": 1.1}, "min_positives": 20, "pooled": ["enterprise"]}


def test_a_group_needs_min_positives():
    assert MIN_POSITIVES == 20
    rows = upsell_rows()
    one_more = pd.DataFrame({"label": [1], "value": [10000.0], "arr_at_as_of": [2000.0],
                             "segment": ["enterprise"]})
    stats = value_stats("upsell", pd.concat([rows, one_more], ignore_index=True))
    assert stats["groups"] == {"SMB": 1.1, "enterprise": 5.0}
    assert stats["overall"] == 2.1  # 41 ratios: the 21st


def test_any_segments_and_a_segment_without_positives_is_pooled():
    rows = pd.DataFrame({"label": 1, "value": [300.0] * 20, "arr_at_as_of": 1000.0,
                         "segment": "partner channel"})
    silent = pd.DataFrame({"label": [0], "value": [0.0], "arr_at_as_of": [10.0],
                           "segment": ["direct"]})
    stats = value_stats("upsell", pd.concat([rows, silent], ignore_index=True))
    assert (stats["groups"], stats["pooled"]) == ({"partner channel": 0.3}, ["direct"])


def test_cross_sell_is_the_median_new_arr_by_product():
    core = pd.DataFrame({"label": 1, "value": [100.0 * i for i in range(1, 21)],
                         "candidate_product": "core"})
    analytics = pd.DataFrame({"label": 1, "value": [500.0, 700.0, 900.0],
                              "candidate_product": "analytics"})
    negative = pd.DataFrame({"label": [0], "value": [1e6], "candidate_product": ["core"]})
    train = pd.concat([core, analytics, negative], ignore_index=True)
    train["candidate_product"] = train["candidate_product"].astype("category")
    # core: 20 values, (1000 + 1100) / 2; overall: the 12th of 23 sorted values
    # 100 200 300 400 500 500 600 700 700 800 900 [900] ...
    assert value_stats("cross-sell", train) == {
        "kind": "amount", "overall": 900.0, "by": "candidate_product",
        "groups": {"core": 1050.0}, "min_positives": 20, "pooled": ["analytics"]}


def test_medians_are_rounded_to_six_decimals():
    rows = pd.DataFrame({"label": 1, "value": [1.0] * 20, "arr_at_as_of": 3.0,
                         "segment": "SMB"})
    assert value_stats("upsell", rows) == {"kind": "arr_ratio", "overall": 0.333333,
                                           "by": "segment", "groups": {"SMB": 0.333333},
                                           "min_positives": 20, "pooled": []}


def test_churn_learns_nothing_and_no_positives_means_zero():
    assert value_stats("churn", pd.DataFrame()) == {"kind": "arr"}
    none = pd.DataFrame({"label": [0, 0], "value": [5.0, 7.0], "arr_at_as_of": [1.0, 1.0],
                         "segment": ["SMB", "SMB"]})
    assert value_stats("upsell", none) == {"kind": "arr_ratio", "overall": 0.0,
                                           "by": "segment", "groups": {},
                                           "min_positives": 20, "pooled": ["SMB"]}
    with pytest.raises(ValueError, match="'renewal'"):
        value_stats("renewal", none)
