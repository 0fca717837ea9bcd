"""What changed and why: run picking, the attribution of a change to features (it adds up to
the change in the model's raw score and names the feature a test moved), model version
changes, and `GET /v1/changes` (shape, ranking, filters, cursor, CSV, errors)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import date

import numpy as np
import pyarrow.parquet as pq
import pytest

from features.store import FeatureStore
from serving.batch import write_local_partition
from serving.changes import ChangeCache, ChangesError, Runs, change_set, pick_runs
from serving.history import ScoreHistory, history_dir
from serving.registry import load_model
from serving.routes.changes import to_csv
from serving.state import Generation, load_generation
from tests.serving.test_api import serve
from tests.serving.week_book import AFTER, BEFORE, MOVES, build_week, copy_snapshot, settings_for

EARLIER = date(2025, 4, 24)  # a run "scored by model version 0" (its note says so)
ITEM_KEYS = {"account_id", "as_of", "previous_as_of", "churn_probability",
             "previous_churn_probability", "change", "drivers", "weighted_change", "raw_change",
             "other_contribution", "model_changed", "rank"}


@pytest.fixture(scope="module")
def week(served_data, tmp_path_factory):
    book = build_week(served_data, tmp_path_factory.mktemp("changes"))
    # An older run that says another model version scored it (same scores as BEFORE).
    history = ScoreHistory(history_dir(book.data_dir))
    copy_snapshot(FeatureStore(served_data / "features"),
                  FeatureStore(book.settings.features_dir), BEFORE, EARLIER)
    note = history.note(BEFORE)
    note["models"]["churn"]["version"] = "0"
    table = pq.read_table(history.path(BEFORE) / "part-0.parquet")
    write_local_partition(history.root, EARLIER,
                          lambda d: pq.write_table(table, d / "part-0.parquet"),
                          json.dumps(note))
    return book


@pytest.fixture(scope="module")
def generation(week) -> Generation:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        return load_generation(week.settings)


@pytest.fixture()
def client(generation, week):
    with serve(generation, week.settings) as c:
        yield c


def changes_of(week, generation, kind="churn", since=None, served=None, load=None):
    scorer = generation.scorer
    return change_set(
        ScoreHistory(history_dir(week.data_dir)), week.settings.features_dir, kind, since,
        scorer.models if served is None else served,
        load or (lambda task, uri: load_model(task, uri, week.settings.tracking_uri)),
        scorer.descriptions, ChangeCache())


def expected_order(week, kind: str = "churn") -> list[str]:
    """The documented ranking, recomputed with pandas from the two history files."""
    history = ScoreHistory(history_dir(week.data_dir))
    after, before = history.read(AFTER), history.read(BEFORE)
    both = after.merge(before, on="account_id", suffixes=("", "_b"))
    p = f"{kind}_probability"
    w = (both[p] - both[f"{p}_b"]) * both["arr"].fillna(0)
    both = both.assign(g=np.select([w > 0, w < 0], [0, 1], 2), s=-w.abs())
    return both.sort_values(["g", "s", "account_id"])["account_id"].tolist()


# --- picking the runs -------------------------------------------------------------------------
def test_default_runs_are_the_newest_and_the_newest_a_week_before_it():
    d = date.fromisoformat
    runs = [d("2025-03-01"), d("2025-03-02"), d("2025-03-05"), d("2025-03-09")]
    assert pick_runs(runs) == Runs(d("2025-03-02"), d("2025-03-09"))
    assert pick_runs(runs, since=d("2025-03-05")) == Runs(d("2025-03-05"), d("2025-03-09"))
    # every run closer than a week: the oldest
    assert pick_runs([d("2025-03-08"), d("2025-03-09")]) == Runs(d("2025-03-08"),
                                                                  d("2025-03-09"))


@pytest.mark.parametrize(("dates", "since", "status", "code"), [
    ([], None, 404, "no_history"),
    ([date(2025, 3, 1)], None, 404, "one_run"),
    ([date(2025, 3, 1), date(2025, 3, 8)], date(2025, 3, 2), 422, "unknown_since"),
    ([date(2025, 3, 1), date(2025, 3, 8)], date(2025, 3, 8), 422, "unknown_since"),
])
def test_runs_that_cannot_be_compared_are_refused_with_a_reason(dates, since, status, code):
    with pytest.raises(ChangesError) as caught:
        pick_runs(dates, since)
    assert (caught.value.status, caught.value.code) == (status, code)


# --- attribution ------------------------------------------------------------------------------
def test_attribution_adds_up_to_the_change_in_raw_score(week, generation):
    cs = changes_of(week, generation)
    rows = list(range(len(cs.ids)))
    cs.explain(rows)
    raw_change = cs.raw[:, 1] - cs.raw[:, 0]
    np.testing.assert_allclose(cs.contrib.sum(axis=1), raw_change, rtol=0, atol=1e-6)
    # the raw score is the model's own log-odds on each snapshot (trees, logistic or blend)
    model = cs.model.model
    for k, x in enumerate(cs.x):
        np.testing.assert_allclose(cs.raw[:, k], model.log_odds_matrix(x), atol=1e-6)
    moved = np.isin(cs.ids, list(MOVES))
    assert np.all(np.abs(raw_change[moved]) > 0.1)
    assert np.all(cs.contrib[~moved] == 0)  # nothing else moved


def test_the_moved_feature_leads_each_moved_accounts_drivers(week, generation):
    cs = changes_of(week, generation)
    for account, (feature, value) in MOVES.items():
        drivers = cs.drivers(cs.row_of[account])
        assert [d["feature"] for d in drivers] == [feature]  # the one feature whose value changed
        lead = drivers[0]
        before = week.before_values[account]
        assert (lead["feature"], lead["before"], lead["after"]) == (feature, before, value)
        description = generation.scorer.descriptions[feature]
        assert lead["description"] == description
        assert lead["text"] == f"{description}: {before:,.0f} -> {value:,.0f}"


def test_changes_rank_by_arr_weighted_change_risers_first(week, generation):
    cs = changes_of(week, generation)
    assert cs.ids.tolist() == expected_order(week)
    first = cs.table.iloc[0]
    assert first["weighted_change"] > 0 and cs.table["weighted_change"].iloc[-1] == 0
    falling = cs.table[cs.table["weighted_change"] < 0]["account_id"].tolist()
    assert falling == ["A0000003"]  # its renewal moved out: less risk


def test_a_model_version_change_is_flagged_and_the_newer_model_explains_both(week, generation):
    same = changes_of(week, generation)
    changed = changes_of(week, generation, since=EARLIER)
    assert (same.model_changed, changed.model_changed) == (False, True)
    assert (changed.previous_version, changed.version) == ("0", same.version)
    assert changed.model is generation.scorer.models["churn"]  # the newer run's version
    row = changed.row_of["A0000001"]
    item = changed.item(changed.table.iloc[row].to_dict(), row, None)
    assert (item["model_changed"], item["previous_model_version"]) == (True, "0")


def test_a_newer_run_scored_by_another_version_than_served_loads_that_version(week,
                                                                          generation):
    loaded = []

    def load(task, uri):
        loaded.append((task, uri))
        return generation.scorer.models[task]

    changes_of(week, generation, served={}, load=load)
    note = ScoreHistory(history_dir(week.data_dir)).note(AFTER)
    assert loaded == [("churn", note["models"]["churn"]["uri"])]


# --- the API ----------------------------------------------------------------------------------
def test_changes_api_answers_the_ranked_changes_with_drivers(client, week):
    body = client.get("/v1/changes").json()
    assert (body["as_of"], body["previous_as_of"]) == (str(AFTER), str(BEFORE))
    assert body["model_changed"] is False and body["total"] == len(expected_order(week))
    assert [i["account_id"] for i in body["items"]] == expected_order(week)[:50]
    top = body["items"][0]
    assert set(top) >= ITEM_KEYS
    assert top["rank"] == 1 and top["change"] > 0
    assert top["change"] == pytest.approx(
        top["churn_probability"] - top["previous_churn_probability"])
    assert top["weighted_change"] == pytest.approx(top["change"] * top["arr"])
    assert sum(d["contribution"] for d in top["drivers"]) + top["other_contribution"] == \
        pytest.approx(top["raw_change"], abs=1e-9)
    feature, value = MOVES[top["account_id"]]
    assert top["drivers"][0]["feature"] == feature and top["drivers"][0]["after"] == value
    assert set(top["drivers"][0]) == {"feature", "description", "before", "after",
                                      "contribution", "text"}


def test_upsell_changes_rank_by_the_upsell_probability(client, week):
    body = client.get("/v1/changes", params={"kind": "upsell", "limit": 500}).json()
    assert [i["account_id"] for i in body["items"]] == expected_order(week, "upsell")
    assert all(i["kind"] == "upsell" for i in body["items"])


def test_owner_filter_and_cursor_page_through_the_filtered_list(client, week):
    after = ScoreHistory(history_dir(week.data_dir)).read(AFTER).set_index("account_id")
    owner = after.loc["A0000001", "owner"]
    wanted = [a for a in expected_order(week) if after.loc[a, "owner"] == owner]
    seen, ranks, cursor = [], [], None
    while True:
        params = {"owner": owner, "limit": 7, **({"cursor": cursor} if cursor else {})}
        body = client.get("/v1/changes", params=params).json()
        assert body["total"] == len(wanted)
        seen += [i["account_id"] for i in body["items"]]
        ranks += [i["rank"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == wanted and ranks == list(range(1, len(wanted) + 1))
    other = client.get("/v1/changes", params={"kind": "upsell", "cursor": body_cursor(client)})
    assert other.status_code == 400 and other.json()["detail"]["error"] == "bad_cursor"
    junk = client.get("/v1/changes", params={"cursor": "not-a-cursor"})
    assert junk.status_code == 400


def body_cursor(client) -> str:
    return client.get("/v1/changes", params={"limit": 1}).json()["next_cursor"]


def test_since_picks_the_older_run_and_an_unknown_one_is_a_422(client):
    body = client.get("/v1/changes", params={"since": str(EARLIER)}).json()
    assert body["previous_as_of"] == str(EARLIER) and body["model_changed"] is True
    bad = client.get("/v1/changes", params={"since": "2025-05-02"})
    assert bad.status_code == 422
    detail = bad.json()["detail"][0]
    assert detail["loc"] == ["query", "since"] and "2025-05-01" in detail["msg"]
    owner = client.get("/v1/changes", params={"owner": "Nobody Here"})
    assert owner.status_code == 422 and owner.json()["detail"][0]["loc"] == ["query", "owner"]


def test_no_history_or_a_single_run_is_a_404(generation, week, served_data, tmp_path):
    with serve(generation, settings_for(tmp_path, served_data)) as c:
        none = c.get("/v1/changes")
        assert none.status_code == 404 and none.json()["detail"]["error"] == "no_history"
        history = ScoreHistory(history_dir(week.data_dir))
        shutil.copytree(history.path(AFTER).resolve(), tmp_path / "history" / "as_of=2025-05-08")
        one = c.get("/v1/changes")
        assert one.status_code == 404 and one.json()["detail"]["error"] == "one_run"
        assert "2025-05-08" in one.json()["detail"]["message"]


def test_changes_csv_has_the_lists_rows_with_plain_language_drivers(client, week):
    response = client.get("/v1/changes", params={"format": "csv", "limit": 500})
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["account_id"] for r in rows] == expected_order(week)
    quiet = next(r for r in rows if r["account_id"] == "A0000001")
    assert rows[0]["rank"] == "1" and " -> 180 (+" in quiet["drivers"].split("; ")[0]
    assert float(rows[0]["probability"]) > float(rows[0]["previous_probability"])
    same = client.get("/v1/changes", params={"limit": 500},
                      headers={"Accept": "text/csv"}).text
    assert same == response.text


def test_changes_csv_neutralises_formulas():
    item = {"kind": "churn", "account_id": "A1", "name": "=HYPERLINK(\"x\")", "owner": "@me",
            "churn_probability": 0.5, "previous_churn_probability": 0.25, "change": -0.25,
            "drivers": [{"text": "-1 logins: 3 -> 1", "contribution": 0.5}]}
    row = next(csv.DictReader(io.StringIO(to_csv([item]))))
    assert (row["name"], row["owner"]) == ("'=HYPERLINK(\"x\")", "'@me")
    assert row["change"] == "-0.25"  # numbers stay numbers
    assert row["drivers"] == "'-1 logins: 3 -> 1 (+0.50)"


def test_openapi_documents_the_changes_errors(client):
    spec = client.get("/openapi.json").json()["paths"]["/v1/changes"]["get"]
    assert {"200", "400", "401", "404", "422", "503"} <= set(spec["responses"])
    assert "risers first" in spec["description"]
    examples = spec["responses"]["404"]["content"]["application/json"]["examples"]
    assert {"no_history", "one_run"} <= set(examples)


def test_change_sets_are_cached_per_generation(client, generation):
    generation.changes.sets.clear()
    client.get("/v1/changes")
    cached = list(generation.changes.sets.values())
    client.get("/v1/changes", params={"limit": 3, "owner": cached[0].owners()[0]})
    assert len(cached) == 1 and list(generation.changes.sets.values()) == cached
    client.get("/v1/changes", params={"kind": "upsell"})
    assert len(generation.changes.sets) == 2
