"""The Scorer on stub models whose outputs are worked out by hand, then on real LightGBM pyfuncs
checked against their own `predict()`.

The stubs are linear in the encoded features with dyadic weights (exact in binary floating
point): probability = bias + x . w, contributions = w * x (missing counts as 0).
"""

from __future__ import annotations

import base64
import json
from datetime import date
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from serving.ranking import CursorError
from serving.reasons import Reason, strongest
from serving.registry import LoadedModel
from serving.scorer import Scorer
from serving.scoring import UnknownFeatureError

AS_OF = date(2025, 3, 1)
PRODUCTS = ["analytics", "core", "support"]
DESCRIPTIONS = {"usage": "Logins per week", "tenure": "Years as a customer",
                "segment": "Sales segment"}  # seats and arr undescribed: shown by name


class StubModel:
    """The numpy-path interface of the propensity pyfunc, linear and countable."""

    def __init__(self, weights: dict[str, float], bias: float,
                 categorical: dict[str, list[str]] | None = None, meta: dict | None = None):
        self.features = list(weights)
        self.w = np.array(list(weights.values()))
        self.bias = bias
        self.schema = {"numeric": [f for f in weights if f not in (categorical or {})],
                       "categorical": dict(categorical or {})}
        self.meta = meta or {}
        self.contrib_rows: list[int] = []  # rows per contributions_matrix call

    def _encode(self, column: str, values: list) -> list[float]:
        levels = self.schema["categorical"].get(column)
        if levels is None:
            return [_number(v) for v in values]
        return [float(levels.index(v)) if v in levels else np.nan for v in values]

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        def values(f: str) -> list:
            if f not in frame:
                return [None] * len(frame)
            return frame[f].astype(object).where(frame[f].notna(), None).tolist()

        columns = [self._encode(f, values(f)) for f in self.features]
        return np.array(columns, dtype="float64").T.reshape(len(frame), len(self.features))

    def matrix_from_records(self, records: list[dict]) -> np.ndarray:
        columns = [self._encode(f, [r.get(f) for r in records]) for f in self.features]
        return np.array(columns, dtype="float64").T.reshape(len(records), len(self.features))

    def probability_matrix(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        return np.clip(self.bias + np.nan_to_num(x) @ self.w, 0.0, 1.0)

    def contributions_matrix(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        self.contrib_rows.append(len(x))
        bias = np.full((len(x), 1), self.bias)
        return np.hstack([np.nan_to_num(x) * self.w, bias])


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return np.nan


def stub_models() -> dict[str, StubModel]:
    return {
        "churn": StubModel({"usage": -0.125, "tenure": -0.0625, "segment": 0.0625}, 0.75,
                           {"segment": ["SMB", "enterprise"]}),
        "upsell": StubModel({"usage": 0.0625, "seats": 0.015625, "arr": 0.0}, 0.125,
                            meta={"value": {"kind": "arr_ratio", "overall": 0.25, "groups": {
                                "SMB": 0.5, "enterprise": 0.125}}}),
        "cross-sell": StubModel({"usage": 0.03125, "candidate_product": 0.125}, 0.0625,
                                {"candidate_product": PRODUCTS},
                                meta={"value": {"kind": "amount", "overall": 1000.0, "groups": {
                                    "support": 2000.0, "analytics": 8000.0}}}),
    }


def loaded(models: dict[str, StubModel]) -> dict[str, LoadedModel]:
    return {t: LoadedModel(task=t, uri=f"stub:{t}", version="7", run_id=None, model=m)
            for t, m in models.items()}


def snapshot(**changes: dict[str, float]) -> pd.DataFrame:
    """Six accounts; A0 (last row) is A1's twin, so they tie on every value."""
    frame = pd.DataFrame({
        "account_id": ["A1", "A2", "A3", "A4", "A5", "A0"],
        "usage": [1, 3, 0, 4, 4, 1],
        "tenure": [2, 4, 1, 1, 3, 2],
        "seats": [8, 16, 0, 4, 0, 8],
        "segment": pd.Series(["SMB", "enterprise", "SMB", "enterprise", None, "SMB"],
                             dtype="string"),
        "arr": [10000.0, 40000.0, 20000.0, 32000.0, 8000.0, 10000.0],
    })
    for account, values in changes.items():
        for column, value in values.items():
            frame.loc[frame["account_id"] == account, column] = value
    return frame


def book() -> pd.DataFrame:
    return pd.DataFrame({
        "account_id": ["A0", "A1", "A2", "A3", "A4", "A5"],
        "name": ["Zero", "One", "Two", "Three", "Four", "Five"],
        "owner": ["alice", "alice", "bob", "alice", "bob", "carol"],
        "segment": ["SMB", "SMB", "enterprise", "SMB", "enterprise", None],
        "products_held": [("core",), ("core",), ("support",), tuple(PRODUCTS), (),
                          ("core", "support")],
    })


def make_scorer(models=None, frame=None, k: int = 2) -> Scorer:
    models = stub_models() if models is None else models
    return Scorer(loaded(models), snapshot() if frame is None else frame, book(), AS_OF,
                  DESCRIPTIONS, reasons_per_direction=k)


@pytest.fixture()
def scorer() -> Scorer:
    return make_scorer()


def by_account(scorer: Scorer, column: str) -> dict[str, object]:
    return dict(zip(scorer.cols["account_id"], scorer.cols[column].tolist(), strict=True))


# --- whole-snapshot pass ---------------------------------------------------------------------
def test_probabilities_money_and_plays_worked_by_hand(scorer):
    # churn 0.75 - usage/8 - tenure/16 + enterprise/16; upsell 1/8 + usage/16 + seats/64
    assert by_account(scorer, "churn_probability") == {
        "A1": 0.5, "A2": 0.1875, "A3": 0.6875, "A4": 0.25, "A5": 0.0625, "A0": 0.5}
    assert by_account(scorer, "upsell_probability") == {
        "A1": 0.3125, "A2": 0.5625, "A3": 0.125, "A4": 0.4375, "A5": 0.375, "A0": 0.3125}
    assert by_account(scorer, "risk_tier") == {
        "A1": "high", "A2": "medium", "A3": "high", "A4": "medium", "A5": "low", "A0": "high"}
    assert by_account(scorer, "arr_at_risk") == {
        "A1": 5000.0, "A2": 7500.0, "A3": 13750.0, "A4": 8000.0, "A5": 500.0, "A0": 5000.0}
    # P(upsell) x ARR x ratio: SMB 0.5, enterprise 0.125, no segment: overall 0.25
    assert by_account(scorer, "expected_expansion") == {
        "A1": 1562.5, "A2": 2812.5, "A3": 1250.0, "A4": 1750.0, "A5": 750.0, "A0": 1562.5}
    assert by_account(scorer, "play") == {
        "A1": "retention", "A2": "expansion", "A3": "retention", "A4": "expansion",
        "A5": "cross-sell", "A0": "retention"}
    assert by_account(scorer, "name")["A4"] == "Four"
    assert by_account(scorer, "owner")["A5"] == "carol"
    assert by_account(scorer, "segment")["A5"] is None
    assert scorer.owners() == ["alice", "bob", "carol"]
    assert scorer.segments() == ["SMB", "enterprise"]
    assert scorer.versions() == {"churn": "7", "upsell": "7", "cross-sell": "7"}
    assert scorer.known_features == ["arr", "seats", "segment", "tenure", "usage"]


def test_next_best_product_is_the_likeliest_product_not_held(scorer):
    # 1/16 + usage/32 + product index/8: support > core > analytics, among those not held
    assert by_account(scorer, "next_best_product") == {
        "A1": "support", "A2": "core", "A3": None, "A4": "support", "A5": "analytics",
        "A0": "support"}
    probability = by_account(scorer, "next_best_product_probability")
    assert np.isnan(probability.pop("A3"))
    assert probability == {"A1": 0.34375, "A2": 0.28125, "A4": 0.4375, "A5": 0.1875,
                           "A0": 0.34375}
    money = by_account(scorer, "expected_cross_sell_arr")
    assert np.isnan(money.pop("A3"))  # holds every product: nothing to offer
    assert money == {"A1": 687.5, "A2": 281.25, "A4": 875.0, "A5": 1500.0, "A0": 687.5}
    for product, held in zip(scorer.cols["next_best_product"], scorer.held, strict=True):
        assert product not in held


def test_missing_models_leave_their_columns_empty():
    models = stub_models()
    del models["cross-sell"]
    scorer = make_scorer(models)
    assert scorer.cols["next_best_product"].tolist() == [None] * 6
    assert np.isnan(scorer.cols["next_best_product_probability"]).all()
    assert np.isnan(scorer.cols["expected_cross_sell_arr"]).all()
    assert scorer.page("cross_sell", None, None, 10, None).total == 0
    assert scorer.reasons([0], ("cross-sell",)) == [{}]

    only_churn = make_scorer({"churn": stub_models()["churn"]})
    assert np.isnan(only_churn.cols["upsell_probability"]).all()
    assert np.isnan(only_churn.cols["expected_expansion"]).all()
    assert by_account(only_churn, "play") == {
        "A1": "retention", "A2": "nurture", "A3": "retention", "A4": "nurture",
        "A5": "nurture", "A0": "retention"}
    assert only_churn.known_features == ["segment", "tenure", "usage"]


# --- ranked lists ----------------------------------------------------------------------------
ORDER = {  # value descending, ties by account_id
    "churn": ["A3", "A4", "A2", "A0", "A1", "A5"],  # 13750, 8000, 7500, 5000, 5000, 500
    "upsell": ["A2", "A4", "A0", "A1", "A3", "A5"],  # 2812.5, 1750, 1562.5 x2, 1250, 750
    "cross_sell": ["A5", "A4", "A0", "A1", "A2"],  # 1500, 875, 687.5 x2, 281.25; A3 none
}


def walk(scorer: Scorer, kind: str, limit: int, owner=None, segment=None) -> list[list[str]]:
    pages, cursor = [], None
    for _ in range(len(scorer.ids) + 1):  # a list that never ends is a failure, not a hang
        page = scorer.page(kind, owner, segment, limit, cursor)
        pages.append([scorer.ids[r] for r in page.rows])
        cursor = page.next_cursor
        if cursor is None:
            return pages
    raise AssertionError(f"more pages than accounts: {pages}")


@pytest.mark.parametrize("kind", list(ORDER))
def test_first_page_is_the_ranking(scorer, kind):
    page = scorer.page(kind, None, None, 100, None)
    assert [scorer.ids[r] for r in page.rows] == ORDER[kind]
    assert page.ranks == list(range(1, len(ORDER[kind]) + 1))
    assert page.total == len(ORDER[kind]) and page.next_cursor is None


@pytest.mark.parametrize("kind", list(ORDER))
@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5, 6])
def test_pages_walk_every_account_exactly_once(scorer, kind, limit):
    pages = walk(scorer, kind, limit)
    assert [a for p in pages for a in p] == ORDER[kind]
    assert all(len(p) == limit for p in pages[:-1]) and 1 <= len(pages[-1]) <= limit
    assert len(pages) == -(-len(ORDER[kind]) // limit)  # no empty page at the end


def test_ranks_continue_across_pages(scorer):
    first = scorer.page("upsell", None, None, 4, None)
    second = scorer.page("upsell", None, None, 4, first.next_cursor)
    assert first.ranks == [1, 2, 3, 4] and second.ranks == [5, 6]


def test_filters_by_owner_and_segment(scorer):
    def ids(**kw):
        page = scorer.page("churn", kw.get("owner"), kw.get("segment"), 10, None)
        return [scorer.ids[r] for r in page.rows], page.ranks, page.total

    # ranks are positions in the whole list, totals count the filtered list
    assert ids(owner="alice") == (["A3", "A0", "A1"], [1, 4, 5], 3)
    assert ids(segment="enterprise") == (["A4", "A2"], [2, 3], 2)
    assert ids(owner="alice", segment="SMB") == (["A3", "A0", "A1"], [1, 4, 5], 3)
    assert ids(owner="bob", segment="SMB") == ([], [], 0)
    assert ids(owner="nobody") == ([], [], 0)
    assert walk(scorer, "churn", 1, owner="alice") == [["A3"], ["A0"], ["A1"]]
    assert walk(scorer, "upsell", 2, owner="bob") == [["A2", "A4"]]


def test_cursor_of_another_list_or_garbage_is_refused(scorer):
    cursor = scorer.page("churn", None, None, 2, None).next_cursor
    with pytest.raises(CursorError, match="'churn' list, not 'upsell'"):
        scorer.page("upsell", None, None, 2, cursor)

    def b64(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    for bad in ["not a cursor!", "", "e30", b64([1, 2]), b64({"k": "churn", "v": 1.0}),
                b64({"k": "churn", "v": "inf", "id": "A1"}),
                b64({"k": "churn", "v": "lots", "id": "A1"})]:
        with pytest.raises(CursorError):
            scorer.page("churn", None, None, 2, bad)


def test_cursor_survives_a_rebuilt_scorer():
    first = make_scorer().page("churn", None, None, 2, None)  # A3, A4
    same = make_scorer()
    assert [same.ids[r] for r in same.page("churn", None, None, 10, first.next_cursor).rows] == [
        "A2", "A0", "A1", "A5"]
    # after a reload A5 jumps ahead of the cursor (not shown again: keyset) and A1 rises
    # above A0; accounts already shown never come back
    changed = make_scorer(frame=snapshot(A5={"arr": 200000.0}, A1={"arr": 12000.0}))
    assert by_account(changed, "arr_at_risk")["A5"] == 12500.0
    assert by_account(changed, "arr_at_risk")["A1"] == 6000.0
    page = changed.page("churn", None, None, 2, first.next_cursor)
    last = changed.page("churn", None, None, 2, page.next_cursor)
    assert [changed.ids[r] for r in page.rows + last.rows] == ["A2", "A1", "A0"]
    assert last.next_cursor is None


# --- reasons -----------------------------------------------------------------------------------
def test_reasons_top_k_per_direction_with_labels_and_snapshot_values(scorer):
    a2, a1, a5 = (scorer.row_of[a] for a in ("A2", "A1", "A5"))
    (r2, r1, r5) = scorer.reasons([a2, a1, a5], ("churn", "upsell", "cross-sell"))
    # churn A2: usage 3 -> -3/8, tenure 4 -> -1/4, enterprise (index 1) -> +1/16
    assert r2["churn"] == {
        "raising": [Reason("segment", "Sales segment", "enterprise", 0.0625)],
        "lowering": [Reason("usage", "Logins per week", 3, -0.375),
                     Reason("tenure", "Years as a customer", 4, -0.25)],
    }
    # upsell A2: seats 16 -> +1/4, usage 3 -> +3/16, arr weight 0 is no reason
    assert r2["upsell"] == {
        "raising": [Reason("seats", "seats", 16, 0.25), Reason("usage", "Logins per week", 3,
                                                                0.1875)],
        "lowering": [],
    }
    # churn A1: two equal contributions keep the model's column order; SMB (index 0) adds 0
    assert r1["churn"] == {
        "raising": [],
        "lowering": [Reason("usage", "Logins per week", 1, -0.125),
                     Reason("tenure", "Years as a customer", 2, -0.125)],
    }
    # cross-sell explains the offered product: support (index 2) -> +1/4, usage 1 -> +1/32
    assert r1["cross-sell"] == {
        "raising": [Reason("candidate_product", "The product offered", "support", 0.25),
                    Reason("usage", "Logins per week", 1, 0.0312)],
        "lowering": [],
    }
    # A5 has no segment: shown as None, contributes nothing
    assert r5["churn"]["lowering"] == [Reason("usage", "Logins per week", 4, -0.5),
                                       Reason("tenure", "Years as a customer", 3, -0.1875)]
    assert r5["churn"]["raising"] == []


def test_at_most_k_reasons_per_direction():
    scorer = make_scorer(k=1)
    (r,) = scorer.reasons([scorer.row_of["A2"]], ("churn",))
    assert r["churn"] == {"raising": [Reason("segment", "Sales segment", "enterprise", 0.0625)],
                          "lowering": [Reason("usage", "Logins per week", 3, -0.375)]}


def test_reasons_are_computed_once_per_task_and_row(scorer):
    churn, upsell = scorer.models["churn"].model, scorer.models["upsell"].model
    first = scorer.reasons([0, 1], ("churn",))
    assert churn.contrib_rows == [2] and upsell.contrib_rows == []
    second = scorer.reasons([1, 2], ("churn", "upsell"))
    assert churn.contrib_rows == [2, 1] and upsell.contrib_rows == [2]
    third = scorer.reasons([2, 1, 0, 1], ("churn", "upsell"))
    assert churn.contrib_rows == [2, 1] and upsell.contrib_rows == [2, 1]  # only row 0 new
    assert second[0]["churn"] == first[1]["churn"]
    assert third[1]["churn"] == second[0]["churn"] and third[3] == third[1]
    assert third[2]["churn"] == first[0]["churn"]


# --- explicit feature records ----------------------------------------------------------------
def records_of(scorer: Scorer) -> list[dict]:
    out = []
    for i, a in enumerate(scorer.ids):
        row = scorer.snapshot.iloc[i]
        out.append({"account_id": a, "usage": int(row["usage"]), "tenure": int(row["tenure"]),
                    "seats": int(row["seats"]), "arr": float(row["arr"]),
                    "segment": None if pd.isna(row["segment"]) else str(row["segment"]),
                    "held_products": list(scorer.held[i])})
    return out


def test_check_records_refuses_unknown_features_by_index_and_key(scorer):
    scorer.check_records([{"account_id": "X", "held_products": ["core"], "usage": 1,
                           "arr": 1.0, "segment": "SMB", "seats": 2, "tenure": 3}])
    scorer.check_records([])
    with pytest.raises(UnknownFeatureError) as err:
        scorer.check_records([{"usage": 1}, {"usge": 2, "tenure": 1},
                              {"candidate_product": "core"}])
    assert err.value.problems == [(1, "usge"), (2, "candidate_product")]
    assert str(err.value) == ("features[1].usge: unknown feature; "
                              "features[2].candidate_product: unknown feature")


def test_score_records_equal_to_the_snapshot_pass(scorer):
    records = records_of(scorer)
    cols, reasons = scorer.score_records(records, ("churn", "upsell", "cross-sell"), True)
    for name, values in scorer.cols.items():
        if name in ("name", "owner"):
            assert cols[name].tolist() == [None] * 6
        elif values.dtype == object:
            assert cols[name].tolist() == values.tolist(), name
        else:
            np.testing.assert_array_equal(cols[name], values, err_msg=name)
    assert reasons == scorer.reasons(list(range(6)), ("churn", "upsell", "cross-sell"))


def test_score_records_only_for_the_tasks_asked_and_lenient_on_gaps(scorer):
    records = [{"usage": 2, "held_products": ["support"]}, {"usage": "lots", "arr": "1000"},
               {}]
    cols, reasons = scorer.score_records(records, ("churn",), False)
    assert reasons is None
    # usage counts, nothing else known: 0.75 - 2/8; text is missing; all missing
    np.testing.assert_array_equal(cols["churn_probability"], [0.5, 0.75, 0.75])
    assert np.isnan(cols["upsell_probability"]).all()
    assert cols["next_best_product"].tolist() == [None] * 3
    np.testing.assert_array_equal(cols["arr"], [np.nan, 1000.0, np.nan])
    np.testing.assert_array_equal(cols["arr_at_risk"], [np.nan, 750.0, np.nan])
    assert cols["account_id"].tolist() == [None, None, None]

    cols, _ = scorer.score_records([{"usage": 0, "held_products": ["support"]}],
                                   ("cross-sell",), False)
    assert cols["next_best_product"].tolist() == ["core"]  # support held: 1/16 + 1/8
    assert cols["next_best_product_probability"].tolist() == [0.1875]


# --- real LightGBM models end to end -----------------------------------------------------------
def _fit(features: pd.DataFrame, y: np.ndarray, tmp_path, name: str, meta: dict):
    """A real booster logged as `log_propensity_model` does, loaded as MLflow would."""
    from training import pyfunc_model as pm
    from training.model_logging import _write_artifacts
    from training.models import FeatureSchema, fit_lightgbm

    schema = FeatureSchema.infer(features, list(features.columns))
    n = len(features) * 3 // 4
    booster = fit_lightgbm(features[:n], y[:n], features[n:], y[n:], schema, seed=1,
                           params={"min_data_in_leaf": 20, "num_leaves": 7,
                                   "learning_rate": 0.1})
    root = tmp_path / name
    root.mkdir()
    artifacts = _write_artifacts(root, booster, schema, {"method": "sigmoid", "a": 1.3, "b": 0.1},
                                 meta)
    model = pm.PropensityModel()
    model.load_context(SimpleNamespace(artifacts=artifacts))
    return model


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("real-models")
    rng = np.random.default_rng(11)
    n = 600
    frame = pd.DataFrame({
        "account_id": [f"R{i:03d}" for i in range(n)],
        "usage": rng.normal(size=n),
        "tenure": rng.integers(0, 10, n).astype("float64"),
        "segment": pd.Series(rng.choice(["SMB", "enterprise", "mid-market"], n), dtype="string"),
        "arr": rng.integers(1000, 100000, n).astype("float64"),
    })
    frame.loc[::9, "tenure"] = np.nan
    frame.loc[::13, "segment"] = None
    churn_y = (rng.random(n) < 1 / (1 + np.exp(frame["usage"] * 1.5))).astype(int)
    upsell_y = (rng.random(n) < 1 / (1 + np.exp(1 - frame["usage"]))).astype(int)
    pairs = frame.loc[frame.index.repeat(3)].reset_index(drop=True)
    pairs["candidate_product"] = pd.Series(PRODUCTS * n, dtype="string")
    bump = pairs["candidate_product"].map({"analytics": 1.0, "core": 0.0, "support": -1.0})
    cross_y = (rng.random(len(pairs)) < 1 / (1 + np.exp(-bump - pairs["usage"]))).astype(int)
    features = ["usage", "tenure", "segment", "arr"]
    models = {
        "churn": _fit(frame[features], churn_y.to_numpy(), tmp_path, "churn", {}),
        "upsell": _fit(frame[features[:3]], upsell_y.to_numpy(), tmp_path, "upsell",
                       {"value": {"overall": 0.3, "groups": {"SMB": 0.5}}}),
        "cross-sell": _fit(pairs[[*features[:2], "candidate_product"]], cross_y.to_numpy(),
                           tmp_path, "cross", {"value": {"overall": 900.0, "groups": {}}}),
    }
    snap = frame.head(40).copy()
    held = [tuple(PRODUCTS[: i % 4]) for i in range(40)]  # 0 to 3 products, A... all held
    book_frame = pd.DataFrame({"account_id": snap["account_id"], "name": "n", "owner": "o",
                               "products_held": held})
    scorer = Scorer(loaded(models), snap, book_frame, AS_OF, {"usage": "Usage"})
    return scorer, models, snap, held


def test_real_models_probabilities_equal_their_predict(real):
    scorer, models, snap, held = real
    for task in ("churn", "upsell"):
        expected = models[task].predict(None, snap)["probability"].to_numpy()
        np.testing.assert_allclose(scorer.cols[f"{task}_probability"], expected, rtol=0,
                                   atol=1e-12)
    per_product = np.column_stack([
        models["cross-sell"].predict(None, snap.assign(candidate_product=p))["probability"]
        for p in PRODUCTS])
    for i, h in enumerate(held):
        open_ = [j for j, p in enumerate(PRODUCTS) if p not in h]
        if not open_:
            assert scorer.cols["next_best_product"][i] is None
            assert np.isnan(scorer.cols["next_best_product_probability"][i])
            continue
        best = max(open_, key=lambda j: per_product[i, j])
        assert scorer.cols["next_best_product"][i] == PRODUCTS[best]
        assert abs(scorer.cols["next_best_product_probability"][i] - per_product[i, best]) < 1e-12
    assert {p for p in scorer.cols["next_best_product"] if p} >= {"analytics", "core", "support"}


def expected_reasons(contrib: np.ndarray, features: list[str], k: int) -> dict:
    """(feature, contribution) pairs: the k largest positive, the k most negative."""
    up = sorted((j for j in range(len(contrib)) if contrib[j] > 0), key=lambda j: -contrib[j])
    down = sorted((j for j in range(len(contrib)) if contrib[j] < 0), key=lambda j: contrib[j])
    return {d: [(features[j], round(float(contrib[j]), 4)) for j in picked[:k]]
            for d, picked in (("raising", up), ("lowering", down))}


def test_real_models_reasons_are_treeshap_contributions(real):
    from training.pyfunc_model import model_frame

    scorer, models, snap, _ = real
    rows = [0, 1, 2, 5, 9]
    explained = scorer.reasons(rows, ("churn", "cross-sell"))
    for task in ("churn", "cross-sell"):
        model = models[task]
        frame = snap.iloc[rows].assign(candidate_product=scorer.cols["next_best_product"][rows])
        contrib = model.booster.predict(model_frame(frame, model.schema)[model.features],
                                        pred_contrib=True)[:, :-1]
        for c, r, row in zip(contrib, explained, rows, strict=True):
            got = {d: [(x.feature, x.contribution) for x in items]
                   for d, items in r[task].items()}
            assert got == expected_reasons(c, model.features, scorer.k), (task, row)
            for reason in r[task]["raising"] + r[task]["lowering"]:
                value = frame.loc[snap.index[row], reason.feature]
                assert reason.value == (None if pd.isna(value) else value)
                assert reason.description == {"usage": "Usage", "candidate_product":
                                              "The product offered"}.get(reason.feature,
                                                                         reason.feature)
    assert any(r["cross-sell"]["raising"] + r["cross-sell"]["lowering"] for r in explained)


def test_real_models_records_equal_the_snapshot_pass(real):
    scorer, _, snap, held = real
    records = []
    for i, row in enumerate(snap.to_dict("records")):
        rec = {k: (None if pd.isna(v) else v) for k, v in row.items()}
        records.append({**rec, "held_products": list(held[i])})
    scorer.check_records(records)
    cols, reasons = scorer.score_records(records, ("churn", "upsell", "cross-sell"), True)
    for name in ("churn_probability", "upsell_probability", "next_best_product_probability",
                 "arr_at_risk", "expected_expansion", "expected_cross_sell_arr"):
        np.testing.assert_array_equal(cols[name], scorer.cols[name], err_msg=name)
    for name in ("next_best_product", "risk_tier", "play", "segment", "account_id"):
        assert cols[name].tolist() == scorer.cols[name].tolist(), name
    assert reasons == scorer.reasons(list(range(len(snap))), ("churn", "upsell", "cross-sell"))


def test_real_models_reasons_on_a_snapshot_lacking_a_feature(real):
    """A model feature the snapshot lacks is scored as missing (which still moves the score);
    its reason shows no value instead of failing the request."""
    _, models, snap, held = real
    lacking = snap.drop(columns=["usage"])
    book_frame = pd.DataFrame({"account_id": snap["account_id"], "products_held": held})
    scorer = Scorer(loaded(models), lacking, book_frame, AS_OF, {})
    expected = models["churn"].predict(None, lacking)["probability"].to_numpy()
    np.testing.assert_allclose(scorer.cols["churn_probability"], expected, rtol=0, atol=1e-12)
    (r,) = scorer.reasons([0], ("churn", "upsell", "cross-sell"))
    usage = [x for task in r.values() for d in task.values() for x in d if x.feature == "usage"]
    assert usage and all(x.value is None for x in usage)


def test_no_cross_sell_reasons_when_nothing_is_offered(scorer):
    """A3 holds every product: no next best product, so no cross-sell reasons either way."""
    a3, a0 = scorer.row_of["A3"], scorer.row_of["A0"]
    explained = scorer.reasons([a3, a0], ("churn", "cross-sell"))
    assert explained[0]["cross-sell"] is None
    assert explained[0]["churn"] is not None
    assert explained[1]["cross-sell"] is not None
    records = records_of(scorer)
    _, reasons = scorer.score_records([records[a3], records[a0]], ("cross-sell",), True)
    assert reasons[0]["cross-sell"] is None and reasons[1]["cross-sell"] is not None


def test_warmup_explains_every_account_once_and_lookups_then_compute_nothing(scorer):
    churn, upsell = scorer.models["churn"].model, scorer.models["upsell"].model
    before = scorer.reasons([0], ("churn",))[0]["churn"]
    assert scorer.warmed() < 1.0
    scorer.start_warmup(chunk=2).join(timeout=30)
    assert scorer.warmed() == 1.0
    n = len(scorer.ids)
    assert sum(churn.contrib_rows) == n and sum(upsell.contrib_rows) == n  # each row once
    calls = list(churn.contrib_rows)
    assert scorer.reasons([0], ("churn",))[0]["churn"] == before
    assert churn.contrib_rows == calls


def test_a_stopped_warmup_does_no_more_work(scorer):
    churn = scorer.models["churn"].model
    scorer.stop_warmup()
    scorer.start_warmup(chunk=1).join(timeout=30)
    assert churn.contrib_rows == [] and scorer.warmed() == 0.0


def test_the_reasons_rule_is_the_strongest_each_way():
    """k largest positive contributions, largest first; k most negative, most negative first;
    a direction with fewer than k is padded with -1 (no feature)."""
    contrib = np.array([[0.1, -0.5, 0.3, 0.0], [0.0, 0.0, 0.0, 0.0], [0.2, 0.2, -0.1, -0.1]])
    idx, val = strongest(contrib, 2)
    assert idx.tolist() == [[[2, 0], [1, -1]], [[-1, -1], [-1, -1]], [[0, 1], [2, 3]]]
    assert val.tolist() == [[[0.3, 0.1], [-0.5, 0.0]], [[0.0, 0.0], [0.0, 0.0]],
                            [[0.2, 0.2], [-0.1, -0.1]]]
    assert strongest(contrib, 9)[0].shape == (3, 2, 9)


def test_features_training_dropped_are_accepted_and_ignored():
    models = stub_models()
    models["churn"].meta = {**models["churn"].meta, "dropped_features": ["tickets_90d"]}
    scorer = make_scorer(models)
    record = {"usage": 1, "tenure": 2, "tickets_90d": 5}
    scorer.check_records([record])
    assert scorer.check_columns(["usage", "tickets_90d"], [[1, 5]]) == [[]]
    with pytest.raises(UnknownFeatureError):
        scorer.check_records([{"tickets_30d": 1}])


def test_accounts_without_owner_are_listed_as_unassigned():
    frame_book = book()
    frame_book.loc[frame_book["account_id"].isin(["A1", "A2"]), "owner"] = None
    scorer = Scorer(loaded(stub_models()), snapshot(), frame_book, AS_OF, DESCRIPTIONS,
                    reasons_per_direction=2)
    assert scorer.owners() == ["alice", "bob", "carol", "unassigned"]
    page = scorer.page("churn", "unassigned", None, 10, None)
    assert sorted(scorer.ids[r] for r in page.rows) == ["A1", "A2"] and page.total == 2
    assert by_account(scorer, "owner")["A1"] is None  # the data keep their null
