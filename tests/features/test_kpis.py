"""KPIs on a hand-made book of seven accounts, checked against numbers worked out by hand."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.kpis import ADDITIVE_COLUMNS, KPI_COLUMNS, compute_kpis, kpi_groups
from features.sources import RawTables

# The book (segment / owner), every term of product "core":
#   A1 enterprise/ann  annual 2023-03-01..2024-03-01 @100, renewed on its last day:
#                      2024-03-01..2025-03-01 @100
#   A2 enterprise/bob  annual 2023-06-01..2024-06-01 @200, seat add-on 2024-02-15..2024-06-01 @50
#                      (co-terminous), renewed 2024-06-01..2025-06-01 @250
#   A3 enterprise/ann  annual 2023-04-01..2024-04-01 @300, downgraded at renewal:
#                      2024-04-01..2025-04-01 @180
#   A4 SMB/bob         monthly from 2023-11-01 @40, cancelled 2024-02-10 12:00 (mid-month)
#   A5 SMB/ann         annual 2023-03-01..2024-03-01 @60, notice 2024-01-15: churns at the end
#   A6 enterprise/bob  created 2024-02-05 (mid-window), monthly from 2024-02-20 @70
#   A7 SMB/ann         monthly from 2023-10-01 @30 cancelled 2024-01-20; reactivated with a
#                      new monthly term from 2024-04-10 @35
#
# MRR at each date T (terms in force on the last day before T; a fixed term counts while
# end_date >= T, an open-ended one while it is not cancelled before T):
#            Jan 1  Feb 1  Mar 1  Apr 1  May 1  Jun 1  Jul 1
#   A1        100    100    100    100    100    100    100   (renewal starts Mar 1, old ends)
#   A2        200    200    250    250    250    250    250   (add-on known from Mar 1)
#   A3        300    300    300    300    180    180    180   (downgrade felt in April)
#   A4         40     40      0      0      0      0      0   (cancelled Feb 10)
#   A5         60     60     60      0      0      0      0   (term in force up to Mar 1)
#   A6          0      0     70     70     70     70     70
#   A7         30      0      0      0     35     35     35
#   total     730    700    780    720    635    635    635

EXTRACTED = datetime(2024, 7, 1)
MARGIN = 0.8


def _account(account_id: str, segment: str, owner: str, created: str) -> dict:
    return {
        "account_id": account_id, "name": f"Company {account_id}", "parent_account_id": None,
        "segment": segment, "industry": "software", "region": "EMEA", "owner": owner,
        "created_at": pd.Timestamp(created),
    }


def _term(
    sid: str, account_id: str, mrr: float, start: str, end: str | None = None,
    cancelled: str | None = None, product: str = "core",
) -> dict:
    return {
        "subscription_id": sid, "account_id": account_id, "product": product, "plan": "pro",
        "seats": 10, "mrr": float(mrr), "start_date": pd.Timestamp(start),
        "end_date": pd.Timestamp(end) if end else pd.NaT,
        "cancelled_at": pd.Timestamp(cancelled) if cancelled else pd.NaT,
        "billing_period": "monthly" if end is None else "annual",
        "auto_renew": end is not None, "discount_pct": 0.0,
    }


def book(extracted_at: datetime | None = EXTRACTED) -> RawTables:
    accounts = pd.DataFrame([
        _account("A1", "enterprise", "ann", "2023-02-01"),
        _account("A2", "enterprise", "bob", "2023-05-01"),
        _account("A3", "enterprise", "ann", "2023-03-01"),
        _account("A4", "SMB", "bob", "2023-10-20"),
        _account("A5", "SMB", "ann", "2023-02-10"),
        _account("A6", "enterprise", "bob", "2024-02-05"),
        _account("A7", "SMB", "ann", "2023-09-15"),
    ])
    subscriptions = pd.DataFrame([
        _term("S1", "A1", 100, "2023-03-01", "2024-03-01"),
        _term("S2", "A1", 100, "2024-03-01", "2025-03-01"),
        _term("S3", "A2", 200, "2023-06-01", "2024-06-01"),
        _term("S4", "A2", 50, "2024-02-15", "2024-06-01"),
        _term("S5", "A2", 250, "2024-06-01", "2025-06-01"),
        _term("S6", "A3", 300, "2023-04-01", "2024-04-01"),
        _term("S7", "A3", 180, "2024-04-01", "2025-04-01"),
        _term("S8", "A4", 40, "2023-11-01", cancelled="2024-02-10 12:00"),
        _term("S9", "A5", 60, "2023-03-01", "2024-03-01", cancelled="2024-01-15 09:00"),
        _term("S10", "A6", 70, "2024-02-20"),
        _term("S11", "A7", 30, "2023-10-01", cancelled="2024-01-20 15:00"),
        _term("S12", "A7", 35, "2024-04-10"),
    ])
    return RawTables.from_frames(
        {"accounts": accounts, "subscriptions": subscriptions}, extracted_at=extracted_at
    )


def _annual(monthly_churn: float) -> float:
    return 1 - (1 - monthly_churn) ** 12


@pytest.fixture(scope="module")
def by_month() -> pd.DataFrame:
    return compute_kpis(book(), gross_margin=MARGIN, start=date(2024, 1, 1), end=date(2024, 6, 1))


@pytest.fixture(scope="module")
def by_segment() -> pd.DataFrame:
    return compute_kpis(
        book(), by=("month", "segment"), gross_margin=MARGIN,
        start=date(2024, 1, 1), end=date(2024, 6, 1),
    )


def _row(frame: pd.DataFrame, month: date, **groups: str) -> pd.Series:
    mask = frame["month"] == month
    for col, value in groups.items():
        mask &= frame[col] == value
    assert mask.sum() == 1
    return frame[mask].iloc[0]


def test_columns_and_order(by_month: pd.DataFrame, by_segment: pd.DataFrame) -> None:
    assert list(by_month.columns) == ["month", *KPI_COLUMNS]
    assert list(by_segment.columns) == ["month", "segment", *KPI_COLUMNS]
    assert by_month["month"].tolist() == [date(2024, m, 1) for m in range(1, 7)]
    # sorted by month then segment ("SMB" < "enterprise")
    assert by_segment[["month", "segment"]].values.tolist()[:4] == [
        [date(2024, 1, 1), "SMB"], [date(2024, 1, 1), "enterprise"],
        [date(2024, 2, 1), "SMB"], [date(2024, 2, 1), "enterprise"],
    ]


def test_january_by_hand(by_month: pd.DataFrame) -> None:
    # Jan 1 -> Feb 1: A7's monthly term was cancelled on Jan 20 (30 churned); nothing else moves.
    r = _row(by_month, date(2024, 1, 1))
    assert (r.mrr_start, r.mrr_end, r.arr_end) == (730, 700, 8400)
    # active at Jan 1: A1, A2, A3, A4, A5, A7 = 6; A7 churned; no new account
    assert (r.accounts_start, r.churned_accounts, r.new_accounts) == (6, 1, 0)
    assert r.logo_churn_rate == pytest.approx(1 / 6)
    assert (r.new_mrr, r.expansion_mrr, r.contraction_mrr, r.churned_mrr) == (0, 0, 0, 30)
    assert r.revenue_churn_rate == pytest.approx(30 / 730)
    assert r.gross_revenue_retention == pytest.approx(700 / 730)
    assert r.net_revenue_retention == pytest.approx(700 / 730)
    # no fixed term ends in January
    assert (r.terms_due, r.terms_renewed) == (0, 0)
    assert pd.isna(r.renewal_rate)
    # CLV: ARR per active account 12 * 730 / 6 = 1460, x 0.8 / annual churn of 1/6 a month
    assert r.clv == pytest.approx(1460 * 0.8 / _annual(1 / 6))
    # trailing 12 months Feb 2023 .. Jan 2024: accounts active at each month start
    # (A1, A5 from Apr 1; A3 from May 1; A2 from Jul 1; A7 from Nov 1; A4 from Dec 1)
    # 0+0+2+3+3+4+4+4+4+5+6+6 = 41, one churn (January)
    assert r.logo_churn_rate_ttm == pytest.approx(1 / 41)
    assert r.clv_ttm == pytest.approx(1460 * 0.8 / _annual(1 / 41))


def test_february_by_hand(by_month: pd.DataFrame) -> None:
    # Feb 1 -> Mar 1: A2 +50 (add-on), A4 -40 (cancelled mid-month), A6 new at 70.
    r = _row(by_month, date(2024, 2, 1))
    assert (r.mrr_start, r.mrr_end) == (700, 780)
    assert (r.accounts_start, r.churned_accounts, r.new_accounts) == (5, 1, 1)
    assert r.logo_churn_rate == pytest.approx(1 / 5)
    assert (r.new_mrr, r.expansion_mrr, r.contraction_mrr, r.churned_mrr) == (70, 50, 0, 40)
    assert r.revenue_churn_rate == pytest.approx(40 / 700)
    assert r.gross_revenue_retention == pytest.approx(660 / 700)
    assert r.net_revenue_retention == pytest.approx(710 / 700)
    assert r.clv == pytest.approx(12 * 700 / 5 * 0.8 / _annual(1 / 5))
    # trailing Mar 2023 .. Feb 2024: 41 - 0 (Feb 2023) + 5 = 46 account-months, 2 churns
    assert r.logo_churn_rate_ttm == pytest.approx(2 / 46)


def test_march_and_april_by_hand(by_month: pd.DataFrame) -> None:
    # March: A5's annual term (notice given) ends Mar 1 and is not renewed; A1's is renewed.
    mar = _row(by_month, date(2024, 3, 1))
    assert (mar.mrr_start, mar.mrr_end) == (780, 720)
    assert (mar.accounts_start, mar.churned_accounts, mar.new_accounts) == (5, 1, 0)
    assert (mar.new_mrr, mar.expansion_mrr, mar.contraction_mrr, mar.churned_mrr) == (0, 0, 0, 60)
    # due in March: S1 (A1, renewed by S2 in force on Mar 2) and S9 (A5, not renewed)
    assert (mar.terms_due, mar.terms_renewed, mar.renewal_rate) == (2, 1, 0.5)
    assert mar.logo_churn_rate_ttm == pytest.approx(3 / 51)  # 46 - 0 (Mar 2023) + 5

    # April: A3 downgraded 300 -> 180 at renewal; A7 reactivated at 35 (counts as new).
    apr = _row(by_month, date(2024, 4, 1))
    assert (apr.mrr_start, apr.mrr_end) == (720, 635)
    assert (apr.accounts_start, apr.churned_accounts, apr.new_accounts) == (4, 0, 1)
    assert (apr.new_mrr, apr.expansion_mrr, apr.contraction_mrr, apr.churned_mrr) == (35, 0, 120, 0)
    assert apr.logo_churn_rate == 0
    assert pd.isna(apr.clv)  # no churn: CLV would be infinite
    assert apr.revenue_churn_rate == pytest.approx(120 / 720)
    assert apr.gross_revenue_retention == pytest.approx(600 / 720)
    assert apr.net_revenue_retention == pytest.approx(600 / 720)
    assert (apr.terms_due, apr.terms_renewed, apr.renewal_rate) == (1, 1, 1.0)  # S6 -> S7
    # trailing May 2023 .. Apr 2024: 51 - 2 (Apr 2023) + 4 = 53, three churns
    assert apr.logo_churn_rate_ttm == pytest.approx(3 / 53)
    assert apr.clv_ttm == pytest.approx(12 * 720 / 4 * 0.8 / _annual(3 / 53))


def test_june_renewal_of_base_and_add_on(by_month: pd.DataFrame) -> None:
    # S3 and its co-terminous add-on S4 both end Jun 1; S5 is in force on Jun 2
    r = _row(by_month, date(2024, 6, 1))
    assert (r.terms_due, r.terms_renewed, r.renewal_rate) == (2, 2, 1.0)
    assert (r.mrr_start, r.mrr_end, r.accounts_start) == (635, 635, 5)


def test_terms_due_only_before_extraction() -> None:
    # extracted May 20: the June term ends are not known to have happened yet
    kpis = compute_kpis(book(datetime(2024, 5, 20)), start=date(2024, 6, 1), end=date(2024, 6, 1))
    assert kpis["terms_due"].tolist() == [0]
    assert pd.isna(kpis["renewal_rate"].iloc[0])


def test_by_segment_by_hand(by_segment: pd.DataFrame) -> None:
    # February: enterprise = A1, A2, A3, A6; SMB = A4, A5, A7
    ent = _row(by_segment, date(2024, 2, 1), segment="enterprise")
    assert (ent.mrr_start, ent.mrr_end) == (600, 720)  # 100+200+300 -> 100+250+300+70
    assert (ent.accounts_start, ent.churned_accounts, ent.new_accounts) == (3, 0, 1)
    assert (ent.new_mrr, ent.expansion_mrr) == (70, 50)
    assert ent.logo_churn_rate == 0 and pd.isna(ent.clv)
    smb = _row(by_segment, date(2024, 2, 1), segment="SMB")
    assert (smb.mrr_start, smb.mrr_end, smb.churned_mrr) == (100, 60, 40)  # A4 40 + A5 60
    assert smb.logo_churn_rate == 0.5
    # March SMB: only A5 (60) active, and it churns: monthly churn 1, annual churn 1
    mar = _row(by_segment, date(2024, 3, 1), segment="SMB")
    assert (mar.accounts_start, mar.churned_accounts, mar.logo_churn_rate) == (1, 1, 1.0)
    assert mar.clv == pytest.approx(12 * 60 * 0.8)
    assert (mar.terms_due, mar.terms_renewed, mar.renewal_rate) == (1, 0, 0.0)


def test_zero_denominators_give_nulls(by_segment: pd.DataFrame) -> None:
    # April SMB: nobody active at Apr 1 (A7 comes back during April), no term due
    r = _row(by_segment, date(2024, 4, 1), segment="SMB")
    assert (r.mrr_start, r.mrr_end, r.accounts_start, r.new_accounts) == (0, 35, 0, 1)
    for col in ("logo_churn_rate", "revenue_churn_rate", "gross_revenue_retention",
                "net_revenue_retention", "renewal_rate", "clv"):
        assert r[col] is pd.NA, col
    rates = by_segment[["logo_churn_rate", "renewal_rate", "clv", "net_revenue_retention"]]
    assert all(str(t) == "Float64" for t in rates.dtypes)
    assert not (rates.astype("float64").abs() == float("inf")).any().any()


def test_by_owner_by_hand() -> None:
    kpis = compute_kpis(book(), by=("owner",), start=date(2024, 3, 1), end=date(2024, 3, 1))
    assert list(kpis.columns[:2]) == ["month", "owner"]
    # March: ann = A1 100, A3 300, A5 60 -> 100 + 300; bob = A2 250, A6 70, unchanged
    ann = _row(kpis, date(2024, 3, 1), owner="ann")
    bob = _row(kpis, date(2024, 3, 1), owner="bob")
    assert (ann.mrr_start, ann.mrr_end, ann.churned_accounts, ann.terms_due) == (460, 400, 1, 2)
    assert (bob.mrr_start, bob.mrr_end, bob.churned_accounts, bob.terms_due) == (320, 320, 0, 0)


def test_groups_sum_to_month_totals() -> None:
    tables = book()
    total = compute_kpis(tables).set_index("month")
    for by in (("segment",), ("owner",), ("segment", "owner")):
        grouped = compute_kpis(tables, by=by).groupby("month")[list(ADDITIVE_COLUMNS)].sum()
        pd.testing.assert_frame_equal(
            grouped, total[list(ADDITIVE_COLUMNS)], check_dtype=False, check_names=False
        )


def test_default_month_range() -> None:
    # first full month of data: the earliest term starts on 2023-03-01, so March 2023;
    # last: the last month ended by the extraction time
    months = compute_kpis(book(datetime(2024, 5, 20)))["month"]
    assert (months.iloc[0], months.iloc[-1]) == (date(2023, 3, 1), date(2024, 4, 1))
    assert len(months) == 14
    # no extraction time: through the month of the latest start (S5 on 2024-06-01)
    months = compute_kpis(book(None))["month"]
    assert months.iloc[-1] == date(2024, 6, 1)
    assert compute_kpis(book(), start=date(2024, 5, 1), end=date(2024, 4, 1)).empty


def test_month_is_implicit_and_unknown_groupings_refused() -> None:
    assert kpi_groups(("segment",)) == ["segment"]
    assert kpi_groups(("month", "owner", "segment", "owner")) == ["owner", "segment"]
    with pytest.raises(ValueError, match="region"):
        compute_kpis(book(), by=("month", "region"))


# --- property: the MRR bridge always closes ------------------------------------------------
DAY0 = date(2023, 1, 1)


@st.composite
def random_book(draw: st.DrawFn) -> RawTables:
    n_accounts = draw(st.integers(1, 4))
    accounts = [
        _account(f"A{i}", draw(st.sampled_from(["SMB", "enterprise"])), "ann", "2022-12-01")
        for i in range(n_accounts)
    ]
    terms = []
    for k in range(draw(st.integers(1, 8))):
        start = DAY0 + timedelta(days=draw(st.integers(0, 300)))
        end = cancelled = None
        if draw(st.booleans()):
            end = str(start + timedelta(days=draw(st.sampled_from([1, 30, 31, 92, 365]))))
        if draw(st.booleans()):
            cancelled = str(start + timedelta(days=draw(st.integers(0, 200)), hours=11))
        terms.append(_term(
            f"S{k}", f"A{draw(st.integers(0, n_accounts - 1))}", draw(st.integers(0, 500)),
            str(start), end, cancelled,
        ))
    return RawTables.from_frames(
        {"accounts": pd.DataFrame(accounts), "subscriptions": pd.DataFrame(terms)},
        extracted_at=datetime(2024, 6, 1),
    )


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_book())
def test_mrr_bridge_closes(tables: RawTables) -> None:
    kpis = compute_kpis(tables, start=date(2023, 1, 1), end=date(2024, 2, 1))
    assert len(kpis) == 14
    # the end of one month is the start of the next
    assert kpis["mrr_end"].iloc[:-1].tolist() == kpis["mrr_start"].iloc[1:].tolist()
    bridge = (kpis.mrr_start + kpis.new_mrr + kpis.expansion_mrr - kpis.contraction_mrr
              - kpis.churned_mrr)
    assert bridge.tolist() == kpis["mrr_end"].tolist()  # integer MRRs: exact in doubles
    assert (kpis.accounts_start - kpis.churned_accounts + kpis.new_accounts).iloc[:-1].tolist() \
        == kpis.accounts_start.iloc[1:].tolist()
    by_segment = compute_kpis(tables, by=("segment",), start=date(2023, 1, 1), end=date(2024, 2, 1))
    sums = by_segment.groupby("month")[["mrr_start", "new_mrr", "churned_mrr", "terms_due"]].sum()
    assert sums.values.tolist() == kpis[["mrr_start", "new_mrr", "churned_mrr", "terms_due"]] \
        .values.tolist()
