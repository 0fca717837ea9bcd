"""Labels on the hand-made book of tests/training/label_fixture.py, values worked out by hand."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.build import build_features
from features.sources import RawTables, connect
from tests.training import label_fixture as fx
from training.labels import TASKS, label_window_observed, make_labels

# account: ARR at as_of, ARR at the horizon, churn label and value, upsell label and value
EXPECTED = """
CA   3600      0  1  3600  0     0
CB   9600  14400  0     0  1  4800
DG  12000      0  1 12000  0     0
FR      0      0  0     0  0     0
MC   1200   1200  0     0  0     0
MO   1200      0  1  1200  0     0
MP  15600  12000  0     0  0     0
NT   8400   8400  0     0  0     0
PA  72000  72000  0     0  0     0
R1  12000  12000  0     0  0     0
R2   6000      0  1  6000  0     0
R3   6000   6000  0     0  0     0
RA   2400   2400  0     0  0     0
U9  12000  13080  0     0  0     0
UR  12000  14400  0     0  1  2400
US  12000  13200  0     0  1  1200
XC   6000   6000  0     0  1   600
XD  12000   7200  0     0  1  1200
XS   6000   6240  0     0  1   240
"""
ROWS = [line.split() for line in EXPECTED.strip().splitlines()]
ACCOUNTS = [r[0] for r in ROWS]


def column(index: int) -> dict[str, float]:
    return {r[0]: float(r[index]) for r in ROWS}


@pytest.fixture(scope="module")
def tables() -> RawTables:
    return RawTables.from_frames(fx.frames(), extracted_at=fx.EXTRACTED_AT)


def by_account(frame: pd.DataFrame, col: str) -> dict[str, float]:
    return dict(zip(frame["account_id"], frame[col].astype(float), strict=True))


def test_population_is_the_feature_snapshot_population(tables):
    labels = make_labels("churn", tables, fx.AS_OF, fx.HORIZON_DAYS)
    features = build_features(tables, fx.AS_OF)
    assert list(labels["account_id"]) == ACCOUNTS == list(features["account_id"])
    assert not {"RB", "NW", "ST"} & set(labels["account_id"])  # not in force at as_of
    assert by_account(labels, "arr_at_as_of") == by_account(features, "arr")


def test_columns_and_types(tables):
    labels = make_labels("upsell", tables, fx.AS_OF)
    assert list(labels.columns) == [
        "account_id", "as_of", "label", "arr_at_as_of", "arr_at_horizon", "value",
    ]
    assert labels["label"].dtype == "int64"
    assert set(labels["as_of"]) == {fx.AS_OF}


def test_churn_labels(tables):
    labels = make_labels("churn", tables, fx.AS_OF, fx.HORIZON_DAYS)
    assert by_account(labels, "arr_at_as_of") == column(1)
    assert by_account(labels, "arr_at_horizon") == column(2)
    assert by_account(labels, "label") == column(3)
    assert by_account(labels, "value") == column(4)


def test_churn_cases_by_name(tables):
    label = by_account(make_labels("churn", tables, fx.AS_OF, fx.HORIZON_DAYS), "label")
    assert label["R1"] == 0  # renewal row starts on the old end date, the window's last day
    assert label["R2"] == 1  # ends on the last day of the window, not renewed
    assert label["R3"] == 0  # ends exactly on the horizon: still in force there
    assert label["DG"] == 1  # downgrade, then cancelled
    assert label["RA"] == 0  # cancelled, then a new term inside the window
    assert (label["MP"], label["CA"], label["PA"]) == (0, 1, 0)  # partial churn; child alone
    assert (label["MO"], label["MC"], label["NT"], label["FR"]) == (1, 0, 0, 0)


def test_horizon_is_a_parameter(tables):
    """One day shorter, the horizon is 2025-03-31: R2's term still covers its last day."""
    short = by_account(make_labels("churn", tables, fx.AS_OF, 89), "label")
    assert short["R2"] == 0 and short["R1"] == 0 and short["DG"] == 1


def test_churn_renewal_only(tables):
    labels = make_labels("churn", tables, fx.AS_OF, fx.HORIZON_DAYS, renewal_only=True)
    # next fixed-term end in [2025-01-01, 2025-04-01): R3 ends on the horizon, NT on 2025-06-01
    assert list(labels["account_id"]) == ["DG", "R1", "R2", "UR", "XD"]
    assert list(labels["label"]) == [1, 0, 1, 0, 0]
    assert list(labels["value"]) == [12000.0, 0.0, 6000.0, 0.0, 0.0]
    assert labels["renewal_due"].tolist() == [True] * 5


def test_upsell_labels(tables):
    labels = make_labels("upsell", tables, fx.AS_OF, fx.HORIZON_DAYS)
    assert by_account(labels, "label") == column(5)
    assert by_account(labels, "value") == column(6)


def test_upsell_threshold_is_inclusive_and_configurable(tables):
    at_10 = by_account(make_labels("upsell", tables, fx.AS_OF), "label")
    assert (at_10["US"], at_10["U9"]) == (1, 0)  # +10 % exactly, +9 %
    at_9 = by_account(make_labels("upsell", tables, fx.AS_OF, min_growth=0.09), "label")
    assert (at_9["US"], at_9["U9"]) == (1, 1)
    at_25 = make_labels("upsell", tables, fx.AS_OF, min_growth=0.25)
    # CB grew 50 %; UR 20 % no longer counts; cross-sells still do
    assert list(at_25.loc[at_25["label"] == 1, "account_id"]) == ["CB", "XC", "XD", "XS"]


def test_cross_sell_one_product(tables):
    labels = make_labels("cross-sell", tables, fx.AS_OF, product="analytics")
    assert "PA" not in set(labels["account_id"])  # held analytics at as_of
    assert len(labels) == len(ACCOUNTS) - 1
    positives = labels[labels["label"] == 1]
    assert list(positives["account_id"]) == ["XC", "XD", "XS"]
    # XC cancelled before the horizon: ARR at its start; others: ARR at the horizon
    assert list(positives["value"]) == [600.0, 1200.0, 240.0]
    assert set(labels["product"]) == {"analytics"}


def test_cross_sell_held_product_excluded(tables):
    labels = make_labels("cross-sell", tables, fx.AS_OF, product="support")
    assert "MP" not in set(labels["account_id"])  # held support at as_of (then dropped it)
    assert labels["label"].sum() == 0
    nobody = make_labels("cross-sell", tables, fx.AS_OF, product="core")
    assert nobody.empty  # every account holds core


def test_cross_sell_all_products(tables):
    labels = make_labels("cross-sell", tables, fx.AS_OF)
    pairs = list(zip(labels["account_id"], labels["product"], strict=True))
    assert ("PA", "support") in pairs and ("PA", "analytics") not in pairs
    assert ("MP", "analytics") in pairs and ("MP", "support") not in pairs
    assert len(labels) == 17 * 2 + 2  # core held by all; PA and MP hold one more product
    positives = labels[labels["label"] == 1]
    got = zip(positives["account_id"], positives["product"], positives["value"], strict=True)
    assert list(got) == [
        ("XC", "analytics", 600.0), ("XD", "analytics", 1200.0), ("XS", "analytics", 240.0),
    ]


def test_window_observed_against_extraction_time():
    on_time = RawTables.from_frames(fx.frames(), extracted_at=datetime(2025, 4, 1))
    early = RawTables.from_frames(fx.frames(), extracted_at=datetime(2025, 3, 31, 23, 59))
    assert label_window_observed(on_time, fx.AS_OF, 90)
    assert not label_window_observed(on_time, fx.AS_OF, 91)
    assert not label_window_observed(early, fx.AS_OF, 90)
    with pytest.raises(ValueError) as err:
        make_labels("churn", early, fx.AS_OF, 90)
    message = str(err.value)
    assert "churn" in message and "2025-01-01" in message and "2025-03-31 23:59" in message


def test_window_observed_without_extraction_time():
    """Without a manifest, the latest start or cancellation stands for the extraction time."""
    with_mc = RawTables.from_frames(fx.frames())  # MC cancelled at 2025-04-01 00:00
    assert label_window_observed(with_mc, fx.AS_OF, 90)
    rows = [r for r in fx.SUBSCRIPTIONS if r[1] != "MC"]  # latest is then R1b, 2025-03-31
    without = RawTables.from_frames(fx.frames(rows))
    assert label_window_observed(without, fx.AS_OF, 89)
    assert not label_window_observed(without, fx.AS_OF, 90)
    with pytest.raises(ValueError, match="upsell labels at as_of 2025-01-01.*2025-03-31"):
        make_labels("upsell", without, fx.AS_OF, 90)


@pytest.mark.parametrize(
    ("task", "kwargs", "match"),
    [
        ("retention", {}, "unknown task 'retention'"),
        ("upsell", {"renewal_only": True}, "renewal_only applies to task 'churn'"),
        ("churn", {"product": "core"}, "product applies to task 'cross-sell'"),
        ("churn", {"horizon_days": 0}, "horizon_days must be positive"),
    ],
)
def test_bad_arguments(tables, task, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_labels(task, tables, fx.AS_OF, **kwargs)


def test_tasks():
    assert TASKS == ("churn", "upsell", "cross-sell")


# --- property: only the state at as_of, the window and the state at the horizon matter ------
PRODUCTS = ["core", "analytics", "support"]
ALL_IDS = sorted({r[1] for r in fx.SUBSCRIPTIONS}) + ["ZZ"]
HORIZON_TS = datetime.combine(fx.HORIZON, datetime.min.time())


def _row(sid, acct, product, mrr, start, end, cancelled):
    return (sid, acct, product, "pro", 3, mrr, start, end, cancelled,
            "monthly" if end is None else "annual", True, 0.0)


@st.composite
def past_term(draw, n: int) -> tuple:
    """A term stamped before as_of that is in force neither at as_of nor at the horizon."""
    days_before = draw(st.just(2) | st.integers(2, 700))
    start = fx.AS_OF - timedelta(days=days_before)
    acct, product = draw(st.sampled_from(ALL_IDS)), draw(st.sampled_from(PRODUCTS))
    mrr = float(draw(st.integers(0, 5000)))
    if draw(st.booleans()):  # fixed term that ended before as_of, with notice or not
        end = start + timedelta(days=draw(st.integers(1, days_before - 1)))
        notice = draw(st.sampled_from([None, pd.Timestamp(start)]))
        return _row(f"P{n}", acct, product, mrr, start, end, notice)
    hours = draw(st.integers(0, days_before * 24 - 1))
    return _row(f"P{n}", acct, product, mrr, start, None,
                pd.Timestamp(start) + pd.Timedelta(hours=hours))


@st.composite
def future_term(draw, n: int) -> tuple:
    """A term starting at or after the horizon, of any product (even a new one)."""
    start = fx.HORIZON + timedelta(days=draw(st.just(0) | st.integers(0, 400)))
    acct = draw(st.sampled_from(ALL_IDS))
    product = draw(st.sampled_from(PRODUCTS + ["widgets"]))
    end = draw(st.sampled_from([None, start + timedelta(days=365)]))
    return _row(f"F{n}", acct, product, float(draw(st.integers(0, 5000))), start, end, None)


@st.composite
def rewritten_book(draw) -> list[tuple]:
    rows = [list(r) for r in fx.SUBSCRIPTIONS]
    for row in rows:
        if draw(st.integers(0, 3)) == 0:  # attributes labels do not read
            row[3] = draw(st.sampled_from(["starter", "pro", "enterprise"]))
            row[4] = draw(st.integers(0, 500))
            row[10] = draw(st.booleans())
            row[11] = float(draw(st.integers(0, 50)))
        end, cancelled = row[7], row[8]
        if end is not None and end < fx.AS_OF and draw(st.booleans()):
            row[5] = float(draw(st.integers(0, 9000)))  # ended before as_of: any MRR
        if end is not None and draw(st.integers(0, 3)) == 0:  # notice never ends a fixed term
            row[8] = pd.Timestamp(row[6]) + pd.Timedelta(hours=draw(st.integers(0, 9000)))
        if end is None and cancelled is None and draw(st.booleans()):  # cancelled from horizon
            row[8] = pd.Timestamp(HORIZON_TS) + pd.Timedelta(hours=draw(st.integers(0, 9000)))
    added = [draw(past_term(i)) for i in range(draw(st.integers(0, 4)))]
    added += [draw(future_term(i)) for i in range(draw(st.integers(0, 4)))]
    return [tuple(r) for r in rows] + added


CASES = [
    ("churn", {}), ("churn", {"renewal_only": True}), ("upsell", {}),
    ("cross-sell", {"product": "analytics"}), ("cross-sell", {}),
]


@pytest.fixture(scope="module")
def baseline(tables) -> list[pd.DataFrame]:
    return [make_labels(task, tables, fx.AS_OF, fx.HORIZON_DAYS, **kw) for task, kw in CASES]


@pytest.fixture(scope="module")
def connection():
    return connect()  # one connection for every example: its views are replaced each time


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=rewritten_book())
def test_labels_ignore_everything_outside_the_window(baseline, connection, rows):
    tables = RawTables.from_frames(fx.frames(rows), fx.EXTRACTED_AT, connection)
    for (task, kw), expected in zip(CASES, baseline, strict=True):
        got = make_labels(task, tables, fx.AS_OF, fx.HORIZON_DAYS, **kw)
        pd.testing.assert_frame_equal(got, expected, obj=f"{task} {kw}")


def test_property_would_catch_a_change_inside_the_window(baseline):
    """The property's check is not vacuous: moving a cancellation into the window flips it."""
    rows = [
        r if r[0] != "MCa" else r[:8] + (pd.Timestamp("2025-03-31 23:00"),) + r[9:]
        for r in fx.SUBSCRIPTIONS
    ]
    tables = RawTables.from_frames(fx.frames(rows), extracted_at=fx.EXTRACTED_AT)
    got = make_labels("churn", tables, fx.AS_OF, fx.HORIZON_DAYS)
    assert by_account(got, "label")["MC"] == 1 and by_account(baseline[0], "label")["MC"] == 0


def test_as_of_must_be_a_date(tables):
    with pytest.raises(ValueError, match="as_of must be a date"):
        make_labels("churn", tables, datetime(2025, 1, 1, 12), 90)
    assert make_labels("churn", tables, pd.Timestamp("2025-01-01"), 90)["as_of"][0] == date(
        2025, 1, 1
    )
