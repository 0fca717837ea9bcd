"""Wrong values are errors, not silent missing values (issue 9, part 3).

On the shared trained book: a value of the wrong type, an unknown category or product, a record
missing most of what the models rely on, and a list filter no account matches are each a 422
naming the field and what it accepts; every example the OpenAPI schema publishes is accepted.
On stub models (exact by hand): how the missing share is counted.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.build import feature_groups
from features.catalogue import CANDIDATE_PRODUCT as CANDIDATE
from features.catalogue import FeatureSpec, all_features
from serving.inputs import FeatureRule, InputError, InputRules
from serving.scorer import Scorer
from serving.settings import ServingSettings
from tests.serving.test_api import serve, snapshot_record
from tests.serving.test_scorer import make_scorer

INPUT_KEYS = ("missing_features", "missing_importance", "missing_important")
CATALOGUE_TYPES = {f.name: f.dtype for f in all_features(feature_groups(FeatureSpec()))}


@pytest.fixture(scope="module")
def client(generation, served_data):
    with serve(generation, ServingSettings(data_dir=served_data, auth_enabled=False)) as c:
        yield c


@pytest.fixture(scope="module")
def record(generation) -> dict:
    """A complete record (a snapshot row as a CRM sends it): only the value under test is
    wrong, so the 422 is about that value alone."""
    return snapshot_record(generation, 3)


def errors_of(response) -> list[tuple]:
    assert response.status_code == 422, response.text
    return [(e["loc"], e["type"]) for e in response.json()["detail"]]


def only_error(response) -> dict:
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    return error


# --- wrong types ------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "value", "rule", "expected"), [
    ("arr", "abc", "number_type", "expected a number or null, got text 'abc'"),
    ("arr", ["x", "y"], "number_type", "expected a number or null, got a list"),
    ("arr", True, "number_type", "expected a number or null, got boolean true"),
    ("arr", "nan", "number_type", "expected a number or null, got text 'nan'"),
    ("days_to_renewal", "soon", "integer_type", "expected an integer (true/false count as "
                                                "1/0) or null, got text 'soon'"),
    ("seats", 4.5, "integer_type", "expected an integer (true/false count as 1/0) or null, "
                                   "got 4.5"),
    ("segment", ["enterprise"], "category_type",
     "expected one of 'SMB', 'enterprise', 'mid-market' or null, got a list"),
])
def test_a_wrong_value_is_422_at_its_path_with_the_expected_type(client, record, name, value,
                                                                 rule, expected):
    second = {**record, name: value}
    error = only_error(client.post("/v1/score", json={"features": [record, second]}))
    assert (error["loc"], error["type"]) == (["body", "features", 1, name], rule)
    assert error["msg"] == f"{name!r}: {expected}"


def test_a_wrong_value_in_columns_is_422_at_data_i_j_naming_the_column(client, record):
    columns = sorted(record)
    j = columns.index("arr")
    rows = [[record[c] for c in columns], [record[c] for c in columns]]
    rows[1][j] = "abc"
    error = only_error(client.post("/v1/score", json={"columns": columns, "data": rows}))
    assert (error["loc"], error["type"]) == (["body", "data", 1, j], "number_type")
    assert error["msg"] == "column 'arr': expected a number or null, got text 'abc'"


def test_long_bad_values_are_quoted_short(client, record):
    error = only_error(client.post("/v1/score", json={"features": [{**record,
                                                                    "arr": "x" * 10_000}]}))
    assert len(error["msg"]) < 100 and error["msg"].endswith("xxx...'")


def test_null_numeric_text_and_whole_floats_stay_allowed(client, record, generation):
    plain = client.post("/v1/score", json={"features": [record], "reasons": False})
    assert plain.status_code == 200
    as_text = {**record, "arr": str(record["arr"]), "seats": float(record["seats"])}
    nulls = {**record, "arr": None, "seats": None}
    both = client.post("/v1/score", json={"features": [as_text, nulls], "reasons": False})
    assert both.status_code == 200, both.text
    text_item, null_item = both.json()["results"]
    assert text_item == plain.json()["results"][0]
    assert null_item["missing_features"] == plain.json()["results"][0]["missing_features"] + 2


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_non_numeric_text_in_any_numeric_feature_is_422_naming_it(client, record,
                                                                     generation, data):
    numeric = sorted({f for m in generation.scorer.models.values()
                      for f in m.model.schema["numeric"]})
    name = data.draw(st.sampled_from(numeric))
    text = data.draw(st.text(max_size=30).filter(lambda s: not _python_float(s)))
    response = client.post("/v1/score", json={"features": [{**record, name: text}]})
    kind = "integer" if CATALOGUE_TYPES[name] == "int64" else "number"
    assert errors_of(response) == [(["body", "features", 0, name], f"{kind}_type")]


def _python_float(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


# --- unknown categories -------------------------------------------------------------------------
def test_an_unknown_category_is_422_listing_the_known_values(client, record):
    error = only_error(client.post("/v1/score", json={"features": [{**record,
                                                                    "segment": "Enterprise"}]}))
    assert (error["loc"], error["type"]) == (["body", "features", 0, "segment"],
                                             "unknown_category")
    assert error["msg"] == ("'segment': unknown value 'Enterprise'; known values: SMB, "
                            "enterprise, mid-market (did you mean 'enterprise'?)")
    assert error["ctx"] == {"known": ["SMB", "enterprise", "mid-market"]}
    columns = ["segment", *[c for c in record if c != "segment"]]
    as_columns = client.post("/v1/score", json={
        "columns": columns, "data": [["Enterprise", *[record[c] for c in columns[1:]]]]})
    assert errors_of(as_columns) == [(["body", "data", 0, 0], "unknown_category")]


def test_unknown_categories_may_be_scored_as_missing_with_a_warning(generation, served_data,
                                                                    record):
    settings_ = ServingSettings(data_dir=served_data, auth_enabled=False,
                                unknown_categories="missing")
    with serve(generation, settings_) as client:
        response = client.post("/v1/score", json={"features": [
            {**record, "segment": "Enterprise"}, {**record, "segment": None}], "reasons": False})
        assert response.status_code == 200
        unknown, null = response.json()["results"]
    assert unknown["warnings"] == [
        "'segment': unknown value 'Enterprise'; known values: SMB, enterprise, mid-market "
        "(did you mean 'enterprise'?) (scored as missing)"]
    assert "warnings" not in null
    assert {k: v for k, v in unknown.items() if k not in ("warnings", "segment")} == {
        k: v for k, v in null.items() if k != "segment"}


# --- how much is missing ---------------------------------------------------------------------
def test_an_empty_record_is_refused_naming_what_matters(client, generation):
    error = only_error(client.post("/v1/score", json={"features": [{}]}))
    assert (error["loc"], error["type"]) == (["body", "features", 0], "too_many_missing")
    ctx = error["ctx"]
    assert ctx["missing_importance"] == 1.0 and ctx["limit"] == 0.5
    scorer = generation.scorer
    assert ctx["missing_important"] == expected_important(scorer, set(scorer.known_features))
    assert error["msg"].startswith(
        f"features[0]: the missing features carry 100% of the {ctx['model']} model's "
        f"importance (at most 50% may be missing; {len(scorer.known_features)} features "
        "missing, the most important: ")


def test_every_explicit_answer_says_how_much_was_missing(client, generation, record):
    scorer = generation.scorer
    given = [f for f in scorer.known_features if record[f] is not None]
    dropped = sorted(given, key=lambda f: -max_weight(scorer, f))[:3]
    partial = {k: v for k, v in record.items() if k not in dropped}
    response = client.post("/v1/score", json={"features": [record, partial], "reasons": False})
    assert response.status_code == 200, response.text
    whole, part = response.json()["results"]
    absent = {f for f in scorer.known_features if record[f] is None}
    for item, gaps in ((whole, absent), (part, absent | set(dropped))):
        assert item["missing_features"] == len(gaps)
        assert item["missing_importance"] == pytest.approx(missing_share(scorer, gaps),
                                                           abs=1e-4)
        assert item["missing_important"] == expected_important(scorer, gaps)
    by_id = client.post("/v1/score", json={"account_ids": [record["account_id"]]}).json()
    assert not set(INPUT_KEYS) & set(by_id["results"][0])  # snapshot scores: not explicit


def test_the_missing_share_limit_is_a_setting(generation, served_data):
    settings_ = ServingSettings(data_dir=served_data, auth_enabled=False,
                                max_missing_importance=1.0)
    with serve(generation, settings_) as client:
        response = client.post("/v1/score", json={"features": [{}], "reasons": False})
    assert response.status_code == 200
    [item] = response.json()["results"]
    assert item["missing_features"] == len(generation.scorer.known_features)
    assert item["missing_importance"] == 1.0


def importance(scorer: Scorer) -> dict[str, dict[str, float]]:
    """Each model's features' shares of its total split gain (the candidate product aside)."""
    out = {}
    for task, m in scorer.models.items():
        gain = dict(zip(m.features, m.model.booster.feature_importance("gain"), strict=True))
        gain.pop(CANDIDATE, None)
        out[task] = {f: float(g) / sum(gain.values()) for f, g in gain.items()}
    return out


def max_weight(scorer: Scorer, feature: str) -> float:
    return max(w.get(feature, 0.0) for w in importance(scorer).values())


def missing_share(scorer: Scorer, gaps: set[str]) -> float:
    return max(sum(w[f] for f in gaps if f in w) for w in importance(scorer).values())


def expected_important(scorer: Scorer, gaps: set[str]) -> list[str]:
    ranked = sorted((f for f in gaps if max_weight(scorer, f) > 0),
                    key=lambda f: (-max_weight(scorer, f), f))
    return ranked[:5]


def test_missing_counts_on_stub_models_worked_by_hand():
    """Stubs expose no booster: each feature weighs the same (churn: usage, tenure, segment
    a third each; cross-sell: usage alone, the candidate product weighs nothing)."""
    scorer = make_scorer()
    records = [{"usage": 1, "tenure": 2, "segment": "SMB"}, {"usage": 1}, {"segment": None}]
    cols, _ = scorer.score_records(records, ("churn",), False, max_missing=1.0)
    assert cols["missing_features"].tolist() == [0, 2, 3]
    assert cols["missing_importance"].tolist() == [0.0, 2 / 3, 1.0]
    assert cols["missing_important"].tolist() == [[], ["segment", "tenure"],
                                                  ["segment", "tenure", "usage"]]
    cols, _ = scorer.score_records(records[1:2], ("churn", "cross-sell"), False)
    assert cols["missing_importance"].tolist() == [2 / 3]  # the worse of the two models
    with pytest.raises(InputError) as refused:
        scorer.score_records(records, ("churn",), False, max_missing=0.5)
    assert [p.loc for p in refused.value.all] == [("features", 1), ("features", 2)]


# --- held products ---------------------------------------------------------------------------
@pytest.mark.parametrize("value", [5, True, 1.5, "analytics", ["analytics", 3]])
def test_held_products_column_must_be_a_list_of_names(client, record, value):
    columns = ["held_products", *[c for c in record if c != "held_products"]]
    response = client.post("/v1/score", json={
        "columns": columns, "data": [[value, *[record[c] for c in columns[1:]]]]})
    if value == ["analytics", 3]:  # not even a feature value: pydantic's own 422
        assert response.status_code == 422
        return
    error = only_error(response)
    assert (error["loc"], error["type"]) == (["body", "data", 0, 0], "held_products_type")
    assert error["msg"].startswith("column 'held_products': expected a list of product names "
                                   "or null, got ")


def test_held_products_must_be_known_in_both_forms(client, record, generation):
    scorer = generation.scorer  # products offered, and those held (core, never offered)
    known = sorted(set(scorer.products).union(*scorer.held))
    message = f"unknown product 'Analytics'; known products: {', '.join(known)}"
    by_record = only_error(client.post("/v1/score", json={"features": [
        {**record, "held_products": ["Analytics"]}]}))
    assert by_record["loc"] == ["body", "features", 0, "held_products"]
    assert by_record["msg"] == f"'held_products': {message}"
    columns = list(record)
    j = columns.index("held_products")
    row = [record[c] for c in columns]
    row[j] = ["Analytics"]
    by_columns = only_error(client.post("/v1/score", json={"columns": columns, "data": [row]}))
    assert by_columns["loc"] == ["body", "data", 0, j]
    assert by_columns["msg"] == f"column 'held_products': {message}"


def test_a_held_product_is_never_offered_in_either_form(client, record, generation):
    products = generation.scorer.products
    for held in products:
        given = {**record, "held_products": [held]}
        columns = list(given)
        for body in ({"features": [given]},
                     {"columns": columns, "data": [[given[c] for c in columns]]}):
            [item] = client.post("/v1/score", json={**body, "reasons": False}).json()["results"]
            assert item["next_best_product"] in set(products) - {held}


def test_a_column_wise_account_id_must_be_text(client, record):
    columns = list(record)
    row = [42 if c == "account_id" else record[c] for c in columns]
    error = only_error(client.post("/v1/score", json={"columns": columns, "data": [row]}))
    assert (error["loc"], error["type"]) == (["body", "data", 0, columns.index("account_id")],
                                             "string_type")


# --- every published example is accepted --------------------------------------------------------
def documented_requests(openapi: dict) -> list[tuple[str, str, dict, object]]:
    """(method, url, query, body) for every example of every operation: each body example
    (request body or its schema's `examples`), with path parameters from their examples."""
    def resolve(schema: dict) -> dict:
        ref = schema.get("$ref")
        return openapi["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema

    out = []
    for path, operations in openapi["paths"].items():
        for method, op in operations.items():
            url, query_examples = path, []
            for p in op.get("parameters", []):
                examples = (p.get("examples") or p.get("schema", {}).get("examples") or [])
                if isinstance(examples, dict):
                    examples = [e["value"] for e in examples.values()]
                if p["in"] == "path":
                    assert examples, f"{method} {path}: path parameter {p['name']} has no example"
                    url = url.replace("{" + p["name"] + "}", str(examples[0]))
                elif examples:
                    query_examples += [{p["name"]: e} for e in examples]
            content = op.get("requestBody", {}).get("content", {}).get("application/json")
            bodies: list = [None]
            if content:
                bodies = [e["value"] for e in (content.get("examples") or {}).values()]
                bodies += resolve(content.get("schema", {})).get("examples", [])
                assert bodies, f"{method} {path}: a request body without an example"
            for body in bodies:
                for query in query_examples or [{}]:
                    out.append((method.upper(), url, query, body))
    return out


#: Routes that read the daily runs' score history or the monitor's result, which the shared
#: book (never run, never monitored) has none of: their examples must reach the route and get
#: its documented "nothing yet" answer.
HISTORY_ROUTES = {"/v1/accounts/A0000001/history": "unknown_account", "/v1/changes": "no_history",
                  "/v1/monitoring": "no_monitoring"}


def test_every_documented_example_is_accepted(client):
    requests = documented_requests(client.get("/openapi.json").json())
    assert sum(1 for r in requests if r[1] == "/v1/score") == 3
    assert {r[1] for r in requests} >= set(HISTORY_ROUTES)
    for method, url, query, body in requests:
        response = client.request(method, url, params=query, json=body)
        if url in HISTORY_ROUTES:
            assert (response.status_code, response.json()["detail"]["error"]) == (
                404, HISTORY_ROUTES[url]), (method, url, query, response.text[:500])
            continue
        assert 200 <= response.status_code < 300, (method, url, body, response.text[:500])


# --- list filters ------------------------------------------------------------------------------
def test_a_segment_no_account_has_is_422_listing_the_segments(client, generation):
    response = client.get("/v1/opportunities", params={"segment": "Enterprise"})
    [error] = response.json()["detail"]
    assert response.status_code == 422
    segments = generation.scorer.segments()
    assert (error["loc"], error["type"]) == (["query", "segment"], "unknown_segment")
    assert error["msg"] == f"no account has segment 'Enterprise'; segments: {', '.join(segments)}"
    assert error["ctx"] == {"known": segments}


def test_an_owner_no_account_has_is_422_pointing_to_the_owners_route(client, generation):
    response = client.get("/v1/opportunities", params={"owner": "Nobody Here", "kind": "upsell"})
    [error] = response.json()["detail"]
    assert response.status_code == 422
    owners = generation.scorer.owners()
    assert (error["loc"], error["type"]) == (["query", "owner"], "unknown_owner")
    assert error["msg"] == (f"no account has owner 'Nobody Here'; GET /v1/owners lists the "
                            f"{len(owners)} owners")
    listed = client.get("/v1/owners").json()
    assert listed == {"as_of": generation.scorer.as_of.isoformat(), "owners": owners,
                      "segments": generation.scorer.segments()}
    assert owners == sorted({o for o in generation.scorer.cols["owner"] if o})
    for owner in owners:
        assert client.get("/v1/opportunities", params={"owner": owner}).status_code == 200


def test_a_422_lists_twenty_problems_and_counts_the_rest(client, record):
    bad = [{**record, "arr": "abc"}] * 25
    detail = client.post("/v1/score", json={"features": bad}).json()["detail"]
    assert [e["loc"] for e in detail[:20]] == [["body", "features", i, "arr"] for i in range(20)]
    assert detail[20] == {"type": "more_errors", "loc": ["body"],
                          "msg": "and 5 more problems like these"}


# --- the quick path of small requests agrees with the full check ---------------------------------
RULES = InputRules({"n": FeatureRule("n", "number"), "i": FeatureRule("i", "integer"),
                    "c": FeatureRule("c", "category", ("a", "b"))}, ["core", "extra"])
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 5),
                   st.floats(-3, 3, allow_nan=False).map(lambda v: round(v * 2) / 4),
                   st.sampled_from(["a", "b", "A", "1", "2.5", "x", ""]),
                   st.lists(st.sampled_from(["a", "core", "extra", "zz"]), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["n", "i", "c", "held_products"]), VALUES,
                                max_size=4), min_size=1, max_size=3))
def test_the_quick_check_accepts_only_what_the_full_check_accepts(records):
    def full() -> bool:
        try:
            RULES._check({k: [r.get(k) for r in records] for r in records for k in r},
                         len(records), lambda i, n: ("features", i, n), "error", True)
            return True
        except InputError:
            return False

    if RULES._plainly_valid(records):
        assert full()
    try:
        RULES.check_records(records)
        accepted = True
    except InputError:
        accepted = False
    assert accepted == full()
