"""POST /v1/admin/reload: an atomic switch under load, in-flight requests finishing on the
old generation, and a failed reload that keeps serving what it had.

The load tests run the app in a real uvicorn server on a loopback port (the TestClient would
serialise requests). The two generations a reload alternates between are built once: the
newest snapshot of the shared book and the one before it, under the same champions.
"""

from __future__ import annotations

import copy
import logging
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest
import uvicorn
from fastapi.testclient import TestClient

from features.tracking_store import embedded_uri
from serving.app import create_app
from serving.scorer import Scorer
from serving.settings import ServingSettings
from serving.state import Generation, LoadError, load_generation

LOAD_SECONDS = 0.3  # a stub reload takes this long, so requests overlap every reload


@pytest.fixture(scope="module")
def generations(served_data) -> tuple[Generation, Generation]:
    """(newest, previous): the real loader's generation, and one on the snapshot before."""
    from features.book import account_book
    from features.store import FeatureStore
    from features.validation import load_tables

    settings = ServingSettings(data_dir=served_data, auth_enabled=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        newest = load_generation(settings)
    store = FeatureStore(settings.features_dir)
    as_of = store.dates()[-2]
    book = account_book(load_tables(settings.raw_dir), as_of)
    scorer = Scorer(newest.scorer.models, store.read(as_of), book, as_of,
                    newest.scorer.descriptions, settings.reasons_per_direction)
    return newest, Generation(scorer=scorer, missing={})


@pytest.fixture()
def settings(served_data) -> ServingSettings:
    return ServingSettings(data_dir=served_data, auth_enabled=False)


class Alternating:
    """A loader returning the given generations in turn, slowly (like a real reload)."""

    def __init__(self, *cycle: Generation):
        self.cycle = cycle
        self.calls = 0

    def __call__(self, _settings: ServingSettings) -> Generation:
        generation = self.cycle[self.calls % len(self.cycle)]
        self.calls += 1
        time.sleep(LOAD_SECONDS)
        return generation


@contextmanager
def running(app) -> Iterator[str]:
    """The app in a uvicorn server on a free loopback port; yields its base URL once ready."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, loop="asyncio", log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def wait_ready(base: str) -> None:
    deadline = time.monotonic() + 60
    while httpx.get(f"{base}/readyz").status_code != 200:
        assert time.monotonic() < deadline, "not ready"
        time.sleep(0.05)


def expectations(generation: Generation, ids: list[str]) -> dict:
    """What a request answered from this generation must say."""
    scorer = generation.scorer
    order, _ = scorer.ranking.order["churn"]
    return {
        "churn": {a: round(float(scorer.cols["churn_probability"][scorer.row_of[a]]), 6)
                  for a in ids},
        "first_page": [str(scorer.ids[r]) for r in order[:20]],
    }


@pytest.mark.slow
def test_reload_under_concurrent_load_fails_no_request(generations, settings):
    newest, previous = generations
    loader = Alternating(newest, previous)
    app = create_app(settings, loader=loader)  # the first load goes through the lifespan
    shared = sorted(set(newest.scorer.ids) & set(previous.scorer.ids))[:8]
    expected = {g.scorer.as_of.isoformat(): expectations(g, shared) for g in generations}
    assert len(expected) == 2

    failures: list[str] = []
    seen: dict[str, int] = {as_of: 0 for as_of in expected}
    requests = [0]
    stop = threading.Event()
    lock = threading.Lock()

    def record(kind: str, response: httpx.Response, check: Callable[[dict], None]) -> None:
        try:
            assert response.status_code == 200, f"{response.status_code} {response.text[:300]}"
            body = response.json()
            assert body["as_of"] in expected, body["as_of"]
            check(body)
        except AssertionError as exc:
            with lock:
                failures.append(f"{kind}: {exc}")
            return
        with lock:
            seen[body["as_of"]] += 1
            requests[0] += 1

    def score(client: httpx.Client) -> None:
        response = client.post("/v1/score", json={"account_ids": shared})

        def check(body: dict) -> None:
            # every score of one answer comes from the generation the answer names
            want = expected[body["as_of"]]["churn"]
            assert {r["account_id"]: r["churn_probability"] for r in body["results"]} == want

        record("score", response, check)

    def pages(client: httpx.Client) -> None:
        cursor = None
        while not stop.is_set():  # walk the churn list; cursors stay valid across reloads
            params = {"limit": 20, "reasons": "true", **({"cursor": cursor} if cursor else {})}
            response = client.get("/v1/opportunities", params=params)

            def check(body: dict, first: bool = cursor is None) -> None:
                if first:
                    want = expected[body["as_of"]]["first_page"]
                    assert [i["account_id"] for i in body["items"]] == want

            record("opportunities", response, check)
            cursor = response.json().get("next_cursor") if response.status_code == 200 else None

    def hammer(work: Callable[[httpx.Client], None], base: str) -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            while not stop.is_set():
                try:
                    work(client)
                except httpx.HTTPError as exc:  # a refused or dropped connection fails too
                    with lock:
                        failures.append(f"{work.__name__}: {type(exc).__name__}: {exc}")

    with running(app) as base:
        wait_ready(base)
        threads = [threading.Thread(target=hammer, args=(work, base))
                   for work in (score, score, pages, pages)]
        for t in threads:
            t.start()
        reloads = []
        try:
            for _ in range(6):
                time.sleep(0.2)
                reloads.append(httpx.post(f"{base}/v1/admin/reload", timeout=30))
            time.sleep(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        metrics = httpx.get(f"{base}/metrics").text

    assert failures == []
    assert [r.status_code for r in reloads] == [200] * 6
    # the first load served `newest`; the reloads alternate previous, newest, previous, ...
    as_ofs = [g.scorer.as_of.isoformat() for g in (previous, newest)] * 3
    assert [r.json()["as_of"] for r in reloads] == as_ofs
    assert loader.calls == 7
    assert all(n >= 5 for n in seen.values()), seen  # both generations answered
    assert requests[0] >= 50, requests[0]  # ~240 on 2 busy cores
    assert 'propensity_reloads_total{outcome="ok"} 6.0' in metrics


def blocking(generation: Generation, entered: threading.Event, release: threading.Event
             ) -> Generation:
    """The generation, whose list pages wait for `release` (a request held in flight)."""
    scorer = copy.copy(generation.scorer)
    page = scorer.page

    def held_page(*args, **kwargs):
        entered.set()
        assert release.wait(30)
        return page(*args, **kwargs)

    scorer.page = held_page  # type: ignore[method-assign]
    return Generation(scorer=scorer, missing={})


@pytest.mark.slow
def test_a_request_in_flight_finishes_on_the_old_generation(generations, settings):
    newest, previous = generations
    entered, release = threading.Event(), threading.Event()
    old = blocking(previous, entered, release)
    app = create_app(settings, loader=Alternating(old, newest))
    answers: list[httpx.Response] = []
    with running(app) as base:
        wait_ready(base)
        in_flight = threading.Thread(target=lambda: answers.append(
            httpx.get(f"{base}/v1/opportunities", params={"limit": 5}, timeout=30)))
        in_flight.start()
        assert entered.wait(30)
        reload = httpx.post(f"{base}/v1/admin/reload", timeout=30)
        assert reload.json()["as_of"] == newest.scorer.as_of.isoformat()
        after = httpx.get(f"{base}/v1/opportunities", params={"limit": 5}).json()
        release.set()
        in_flight.join(timeout=30)
    [answer] = answers
    assert answer.status_code == 200
    assert answer.json()["as_of"] == previous.scorer.as_of.isoformat()
    assert [i["account_id"] for i in answer.json()["items"]] == expectations(
        previous, [])["first_page"][:5]
    assert after["as_of"] == newest.scorer.as_of.isoformat()


# --- a reload that fails ----------------------------------------------------------------------
class FailingSecond:
    """Loads `generation`, then fails once with `error`, then loads `generation` again."""

    def __init__(self, generation: Generation, error: Exception):
        self.generation, self.error, self.calls = generation, error, 0

    def __call__(self, _settings: ServingSettings) -> Generation:
        self.calls += 1
        if self.calls == 2:
            raise self.error
        return self.generation


def test_a_failed_reload_keeps_serving_and_is_reported(generations, settings, caplog):
    newest, _ = generations
    error = LoadError("champion of propensity-churn cannot be loaded: registry unreachable")
    app = create_app(settings, loader=FailingSecond(newest, error), load_on_start=False)
    account = str(newest.scorer.ids[0])
    as_of = newest.scorer.as_of.isoformat()
    with TestClient(app) as client:
        assert client.post("/v1/admin/reload").status_code == 200
        with caplog.at_level(logging.ERROR, logger="serving.state"):
            failed = client.post("/v1/admin/reload")
        message = "LoadError: champion of propensity-churn cannot be loaded: registry unreachable"
        assert failed.status_code == 503
        assert failed.json() == {"reloaded": False, "as_of": as_of,
                                 "model_versions": newest.scorer.versions(), "error": message}
        assert f"reload failed, still serving the previous generation: {message}" in (
            caplog.messages)

        scored = client.post("/v1/score", json={"account_ids": [account]})
        assert scored.status_code == 200 and scored.json()["as_of"] == as_of
        assert client.get("/readyz").status_code == 200
        models = client.get("/v1/models").json()
        assert models["ready"] is True and models["as_of"] == as_of
        assert models["last_reload_error"] == message
        assert 'propensity_reloads_total{outcome="failed"} 1.0' in client.get("/metrics").text

        assert client.post("/v1/admin/reload").status_code == 200
        assert client.get("/v1/models").json()["last_reload_error"] is None


@pytest.mark.slow
def test_a_missing_snapshot_at_reload_keeps_the_old_generation(served_data, tmp_path: Path):
    """The real loader on a copy of the book: take the snapshots away, reload, put them back."""
    data = tmp_path / "book"
    for part in ("raw", "features", "mlflow"):
        shutil.copytree(served_data / part, data / part, symlinks=True)
    app = create_app(ServingSettings(data_dir=data, auth_enabled=False), load_on_start=False)
    with TestClient(app) as client:
        assert client.post("/v1/admin/reload").status_code == 200
        as_of = client.get("/v1/models").json()["as_of"]
        (data / "features").rename(tmp_path / "features-away")
        (data / "features").mkdir()

        failed = client.post("/v1/admin/reload")
        assert failed.status_code == 503
        error = failed.json()["error"]
        assert error == (f"LoadError: no feature snapshot in {data / 'features'}: run "
                         "`propensity features build`")
        models = client.get("/v1/models").json()
        assert (models["as_of"], models["last_reload_error"]) == (as_of, error)
        page = client.get("/v1/opportunities", params={"limit": 3})
        assert page.status_code == 200 and page.json()["as_of"] == as_of

        (data / "features").rmdir()
        (tmp_path / "features-away").rename(data / "features")
        assert client.post("/v1/admin/reload").json()["reloaded"] is True
        assert client.get("/v1/models").json()["last_reload_error"] is None


# --- a snapshot worse than the one serving is refused ------------------------------------------
def copy_book(served_data: Path, data: Path) -> None:
    for part in ("raw", "features", "mlflow"):
        shutil.copytree(served_data / part, data / part, symlinks=True)


def publish_next(data: Path, change: Callable, version: str | None = None) -> str:
    """Store `change(newest snapshot)` as a snapshot one month after the newest; its as_of."""
    import pyarrow as pa

    from features.store import FeatureStore

    store = FeatureStore(data / "features")
    newest = store.dates()[-1]
    as_of = (newest.replace(day=1) + timedelta(days=32)).replace(day=1)
    frame = change(store.read(newest))
    store.write(as_of, pa.Table.from_pandas(frame, preserve_index=False),
                version or store.catalogue_version(newest))
    return as_of.isoformat()


def unpublish(data: Path, as_of: str) -> None:
    (data / "features" / f"as_of={as_of}").unlink()  # the link: the store no longer has it


@pytest.mark.slow
def test_a_snapshot_that_breaks_a_rule_is_refused_and_the_old_generation_serves(
        served_data, tmp_path: Path, caplog):
    """Dropped features, `mrr` stored as text, 0 rows, another catalogue: each reload is 409,
    names table, column and rule, and the served scores do not move."""
    data = tmp_path / "book"
    copy_book(served_data, data)
    app = create_app(ServingSettings(data_dir=data, auth_enabled=False), load_on_start=False)
    with TestClient(app) as client:
        assert client.post("/v1/admin/reload").status_code == 200
        before = client.get("/v1/models").json()
        account = client.get("/v1/opportunities", params={"limit": 1}).json()["items"][0]
        features = before["models"][0]["features"]
        dropped = [f for f in features if f not in ("segment", "mrr")][:10]
        cases = [
            (lambda f: f.drop(columns=dropped), None,
             [(c, "missing_feature") for c in dropped]),
            (lambda f: f.assign(mrr=f["mrr"].astype(str)), None, [("mrr", "wrong_type")]),
            (lambda f: f.iloc[:0], None, [(None, "empty")]),
            (lambda f: f, "0123456789ab", [(None, "catalogue_version")]),
        ]
        for change, version, expected in cases:
            as_of = publish_next(data, change, version)
            with caplog.at_level(logging.ERROR, logger="serving.state"):
                refused = client.post("/v1/admin/reload")
            assert refused.status_code == 409, refused.text
            body = refused.json()
            assert body["reloaded"] is False and body["as_of"] == before["as_of"]
            assert [(p["column"], p["rule"]) for p in body["problems"]] == expected
            assert {p["table"] for p in body["problems"]} == {f"feature snapshot as_of={as_of}"}
            assert body["error"].startswith(f"SnapshotRefused: feature snapshot as_of={as_of}")
            assert any(m.startswith("reload failed, still serving the previous generation: "
                                    "SnapshotRefused: feature snapshot") for m in caplog.messages)
            models = client.get("/v1/models").json()
            assert models["as_of"] == before["as_of"]
            assert models["last_reload_error"] == body["error"]
            assert models["last_reload_problems"] == body["problems"]
            assert client.get("/readyz").status_code == 200
            again = client.get(f"/v1/accounts/{account['account_id']}").json()
            assert again["churn_probability"] == account["churn_probability"]
            unpublish(data, as_of)
        assert client.post("/v1/admin/reload").status_code == 200
        assert client.get("/v1/models").json()["last_reload_problems"] == []


def test_a_snapshot_with_far_fewer_accounts_needs_force(generations, settings):
    """More than half of the serving accounts gone (reload_max_account_drop 0.5): 409 unless
    the admin reloads with force=true."""
    newest, _ = generations
    scorer = newest.scorer
    kept = scorer.snapshot.iloc[:len(scorer.ids) // 2 - 1]
    shrunk = Generation(scorer=Scorer(scorer.models, kept, pd.DataFrame(
        columns=["account_id", "name", "owner", "products_held"]), scorer.as_of,
        scorer.descriptions, settings.reasons_per_direction), missing={})
    app = create_app(settings, loader=Alternating(newest, shrunk, shrunk), load_on_start=False)
    with TestClient(app) as client:
        assert client.post("/v1/admin/reload").status_code == 200
        refused = client.post("/v1/admin/reload")
        assert refused.status_code == 409
        [problem] = refused.json()["problems"]
        n, half = len(kept), len(scorer.ids)
        assert problem == {
            "table": f"feature snapshot as_of={scorer.as_of}", "column": None,
            "rule": "accounts_drop",
            "detail": f"{n} accounts where {half} are serving (a drop of {1 - n / half:.0%}, "
                      "more than the 50% allowed by reload_max_account_drop); reload with "
                      "force=true if it is intended"}
        assert client.get("/v1/models").json()["accounts"] == half
        forced = client.post("/v1/admin/reload", params={"force": "true"})
        assert forced.status_code == 200
        assert client.get("/v1/models").json()["accounts"] == n


# --- no tracking store, no model ------------------------------------------------------------
def test_serving_never_creates_a_tracking_store(served_data, tmp_path: Path):
    """No mlflow.db where the settings point: one sentence naming the store, and no store made."""
    data = tmp_path / "book"
    for part in ("raw", "features"):
        shutil.copytree(served_data / part, data / part, symlinks=True)
    settings = ServingSettings(data_dir=data, auth_enabled=False)
    uri = embedded_uri(settings.mlflow_dir)
    app = create_app(settings, load_on_start=False)
    with TestClient(app) as client:
        failed = client.post("/v1/admin/reload")
        assert failed.status_code == 503
        assert failed.json()["error"] == (
            f"LoadError: the MLflow tracking store at {uri} does not exist: train a model there "
            "(`propensity train churn`) or point mlflow_tracking_uri / MLFLOW_TRACKING_URI at "
            "the store that holds the models")
        ready = client.get("/readyz").json()
        assert ready["missing"] == {t: f"{t}: no model (the MLflow tracking store at {uri} "
                                    f"does not exist): train one with `propensity train {t}`"
                                    for t in ("churn", "upsell")}
    assert not (data / "mlflow" / "mlflow.db").exists()


@pytest.mark.slow
def test_a_store_moved_away_while_serving_is_named_on_reload(served_data, tmp_path: Path):
    data = tmp_path / "book"
    copy_book(served_data, data)
    settings = ServingSettings(data_dir=data, auth_enabled=False)
    app = create_app(settings, load_on_start=False)
    with TestClient(app) as client:
        assert client.post("/v1/admin/reload").status_code == 200
        (data / "mlflow" / "mlflow.db").rename(tmp_path / "away.db")
        failed = client.post("/v1/admin/reload")
        assert failed.status_code == 503
        assert failed.json()["error"].startswith(
            f"LoadError: the MLflow tracking store at {embedded_uri(settings.mlflow_dir)} does not "
            "exist: ")
        assert client.get("/readyz").status_code == 200  # the old generation serves
        assert not (data / "mlflow" / "mlflow.db").exists()
        (data / "mlflow" / "mlflow.db").write_bytes(b"not a database")
        unreadable = client.post("/v1/admin/reload").json()["error"]
        assert unreadable.startswith(f"LoadError: the MLflow tracking store at "
                                     f"{embedded_uri(settings.mlflow_dir)} cannot be read (")


def test_serve_before_any_model_is_trained_says_what_to_train(served_data, mlflow_data_dir,
                                                              caplog):
    """An empty store: /readyz and the page list the missing models and the train command;
    the log does not pretend a previous generation serves."""
    data = mlflow_data_dir
    for part in ("raw", "features"):
        shutil.copytree(served_data / part, data / part, symlinks=True)
    settings = ServingSettings(data_dir=data, auth_enabled=False)
    app = create_app(settings, load_on_start=False)
    uri = embedded_uri(settings.mlflow_dir)
    with TestClient(app) as client, caplog.at_level(logging.ERROR, logger="serving.state"):
        assert client.post("/v1/admin/reload").status_code == 503
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["missing"] == {
            t: f"{t}: no model propensity-{t} with alias champion in {uri}: train one with "
               f"`propensity train {t}`" for t in ("churn", "upsell", "cross-sell")}
        page = client.get("/")
        assert page.status_code == 503
        assert "propensity train churn" in page.text and "propensity train upsell" in page.text
        assert "still loading" not in page.text
    assert not any("still serving the previous generation" in m for m in caplog.messages)
    assert any(m.startswith("load failed, nothing is served yet: LoadError: churn: no model")
               for m in caplog.messages)
