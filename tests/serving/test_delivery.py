"""Delivery into the CRM: the changed rows, the bulk files, and signed webhooks with retries and
a dead letter, against a real HTTP receiver on 127.0.0.1 that each test starts."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from serving.batch import OUTPUT_SCHEMA, write_local_partition
from serving.delivery import DeliveryError, publish
from serving.delivery.changes import changed_rows
from serving.delivery.publish import dead_letter
from serving.delivery.webhooks import account_key
from serving.history import ScoreHistory, history_dir
from serving.settings import ServingSettings

ROOT = Path(__file__).resolve().parents[2]
MONDAY, NEXT_MONDAY = date(2024, 3, 4), date(2024, 3, 11)
REASONS = json.dumps({"raising": [{"feature": "events_30d", "description": "Product events in "
                                   "the last 30 days", "contribution": 0.4213}],
                      "lowering": [{"feature": "tickets_90d", "description": "Support tickets",
                                    "contribution": -0.1}]})


def run_rows(as_of: date, accounts: dict[str, tuple[float, float, str]]) -> pd.DataFrame:
    """A run's scored accounts: account -> (churn probability, upsell probability, risk tier)."""
    rows = []
    for account, (churn, upsell, tier) in accounts.items():
        row = {f.name: None for f in OUTPUT_SCHEMA}
        row.update(account_id=account, as_of=as_of, name=f"Company {account}", owner="Ann",
                   segment="SMB", arr=1000.0, churn_probability=churn, risk_tier=tier,
                   arr_at_risk=1000.0 * churn, upsell_probability=upsell, play="retain",
                   churn_reasons=REASONS)
        rows.append(row)
    return pd.DataFrame(rows)


def publish_run(data_dir: Path, frame: pd.DataFrame, as_of: date, churn_version: str = "3"
                ) -> None:
    """Put ``frame`` in the score history as the run of ``as_of`` (the batch layout)."""
    table = pa.Table.from_pandas(frame[OUTPUT_SCHEMA.names], schema=OUTPUT_SCHEMA,
                                 preserve_index=False)
    note = json.dumps({"as_of": str(as_of), "models": {
        "churn": {"uri": "models:/propensity-churn/" + churn_version, "version": churn_version},
        "upsell": {"uri": "models:/propensity-upsell/1", "version": "1"}}})
    write_local_partition(history_dir(data_dir), as_of,
                          lambda d: pq.write_table(table, d / "part-0.parquet"), note)


BEFORE = {"A1": (0.30, 0.10, "medium"), "A2": (0.20, 0.10, "low"), "A3": (0.10, 0.10, "low"),
          "A5": (0.40, 0.50, "medium"), "A6": (0.90, 0.00, "high")}
AFTER = {"A1": (0.35, 0.10, "medium"),  # churn +0.05: exactly the threshold
         "A2": (0.249999, 0.10, "low"),  # churn +0.049999: just under
         "A3": (0.11, 0.10, "medium"),  # a tier change with a small move
         "A4": (0.50, 0.20, "high"),  # new
         "A5": (0.40, 0.44, "medium")}  # upsell -0.06; A6 has left the book


def test_changed_rows_are_exact_at_the_threshold():
    changed = changed_rows(run_rows(NEXT_MONDAY, AFTER), run_rows(MONDAY, BEFORE), MONDAY, 0.05)
    assert changed[["account_id", "changes", "previous_risk_tier"]].fillna("-").values.tolist() \
        == [["A1", "churn", "medium"], ["A3", "risk_tier", "low"], ["A4", "new", "-"],
            ["A5", "upsell", "medium"]]
    assert changed["churn_change"].round(9).fillna(-1).tolist() == [0.05, 0.01, -1, 0.0]
    assert changed["upsell_change"].round(9).fillna(-1).tolist() == [0.0, 0.0, -1, -0.06]
    assert changed["previous_as_of"].tolist() == [MONDAY] * 4
    both = changed_rows(run_rows(NEXT_MONDAY, AFTER), run_rows(MONDAY, BEFORE), MONDAY, 0.0)
    assert both["account_id"].tolist() == ["A1", "A2", "A3", "A4", "A5"]  # 0: every row counts
    first = changed_rows(run_rows(MONDAY, BEFORE), None, None, 0.05)
    assert first["changes"].tolist() == ["new"] * 5


# --- files ------------------------------------------------------------------------------------
def write_accounts(data_dir: Path, external: dict[str, str] | None) -> None:
    """The raw accounts file the CRM ids come from (only the columns delivery reads)."""
    frame = pd.DataFrame({"account_id": list(AFTER)})
    if external is not None:
        frame["external_id"] = [external.get(a) for a in AFTER]
    (data_dir / "raw").mkdir(parents=True, exist_ok=True)
    frame.to_parquet(data_dir / "raw" / "accounts.parquet", index=False)


def two_runs(data_dir: Path, after: pd.DataFrame | None = None) -> None:
    publish_run(data_dir, run_rows(MONDAY, BEFORE), MONDAY)
    publish_run(data_dir, run_rows(NEXT_MONDAY, AFTER) if after is None else after, NEXT_MONDAY)


def settings_for(data_dir: Path, **kw) -> ServingSettings:
    return ServingSettings(data_dir=data_dir, **kw)


def test_files_hold_every_account_and_the_changed_ones_with_the_crms_id(tmp_path):
    after = run_rows(NEXT_MONDAY, AFTER)
    after.loc[after.account_id == "A4", "name"] = '=HYPERLINK("http://evil.example","x")'
    after.loc[after.account_id == "A5", "owner"] = "+cmd|' /C calc'!A0"
    two_runs(tmp_path, after)
    write_accounts(tmp_path, {"A1": "0015A1", "A3": "0015A3", "A4": "0015A4"})
    settings = settings_for(tmp_path)
    report = publish(settings, ScoreHistory(history_dir(tmp_path)), NEXT_MONDAY)

    assert (report.accounts, report.changed, report.previous_as_of) == (5, 4, MONDAY)
    folder = tmp_path / "delivery" / "files" / "as_of=2024-03-11"
    assert report.folder == folder
    assert json.loads(json.dumps(report.as_dict()))["folder"] == str(folder)  # a JSON log line
    assert sorted(p.name for p in folder.iterdir()) == [
        "_delivery.json", "changed.csv", "changed.parquet", "scores.csv", "scores.parquet"]
    full = pq.read_table(folder / "scores.parquet")
    assert full.column_names[:2] == ["account_id", "external_id"]
    assert full.column("external_id").to_pylist() == ["0015A1", None, "0015A3", "0015A4", None]
    changed = pq.read_table(folder / "changed.parquet").to_pandas()
    assert changed[["account_id", "external_id", "changes"]].fillna("-").values.tolist() == [
        ["A1", "0015A1", "churn"], ["A3", "0015A3", "risk_tier"], ["A4", "0015A4", "new"],
        ["A5", "-", "upsell"]]
    assert pq.read_schema(folder / "changed.parquet").field("previous_as_of").type == pa.date32()

    text = (folder / "changed.csv").read_text()
    assert "'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")" in text  # a text cell, quoted
    assert "'+cmd|' /C calc'!A0" in text
    cells = pd.read_csv(folder / "changed.csv", dtype=str, keep_default_na=False)
    assert cells.loc[cells.account_id == "A5", "upsell_change"].astype(float).round(9).tolist() \
        == [-0.06]  # a negative number stays a number
    assert cells["churn_reasons"].tolist()[0] == \
        "Product events in the last 30 days (+0.42); Support tickets (-0.10)"
    assert len(pd.read_csv(folder / "scores.csv")) == 5
    assert json.loads((folder / "_delivery.json").read_text())["model_versions"] == \
        {"churn": "3", "upsell": "1"}


def test_without_external_ids_the_files_have_no_such_column(tmp_path):
    two_runs(tmp_path)
    write_accounts(tmp_path, None)
    report = publish(settings_for(tmp_path), ScoreHistory(history_dir(tmp_path)), NEXT_MONDAY)
    assert "external_id" not in pq.read_schema(report.folder / "scores.parquet").names


def test_a_failed_write_publishes_no_files(tmp_path, monkeypatch):
    two_runs(tmp_path)
    import serving.delivery.files as files

    def broken(table):
        raise OSError("disk full")
    monkeypatch.setattr(files, "csv_table", broken)
    with pytest.raises(OSError, match="disk full"):
        publish(settings_for(tmp_path), ScoreHistory(history_dir(tmp_path)), NEXT_MONDAY)
    out = tmp_path / "delivery" / "files"
    assert not (out / "as_of=2024-03-11").exists()
    assert [p.name for p in (out / ".versions").iterdir()] == []  # no partial folder


# --- webhooks ---------------------------------------------------------------------------------
SECRET = "whsec_test_5a1e"


class Receiver:
    """A local webhook receiver: answers each POST with ``answer(n)`` (n counts from 0); an
    answer of None never replies (it waits until the test ends)."""

    def __init__(self, answer: Callable[[int], int | None]):  # replaceable between runs
        self.answer = answer
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                n = len(receiver.requests)
                receiver.requests.append((dict(self.headers), body))
                status = receiver.answer(n)
                if status is None:
                    receiver.release.wait(10)
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/propensity"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, n: int, seconds: float = 10) -> None:
        """Until n requests arrived: a client that gave up may be read after it left."""
        end = time.monotonic() + seconds
        while len(self.requests) < n and time.monotonic() < end:
            time.sleep(0.01)

    def accounts(self, k: int) -> list[str]:
        return [a["account_id"] for a in json.loads(self.requests[k][1])["accounts"]]

    def key(self, k: int) -> str:
        return self.requests[k][0]["Idempotency-Key"]


@pytest.fixture()
def receiver() -> Iterator[Callable[[Callable[[int], int | None]], Receiver]]:
    started: list[Receiver] = []

    def start(answer: Callable[[int], int | None]) -> Receiver:
        started.append(Receiver(answer))
        return started[-1]

    yield start
    for r in started:
        r.close()


def hook_settings(data_dir: Path, url: str, monkeypatch, **kw) -> ServingSettings:
    monkeypatch.setenv("CRM_HOOK_SECRET", SECRET)
    kw = {"webhook_backoff_seconds": 0.01, "webhook_timeout_seconds": 10.0, **kw}
    return settings_for(data_dir, delivery_files=False,
                        webhooks=[{"url": url, "secret_env": "CRM_HOOK_SECRET"}], **kw)


def documented_verifier() -> Callable:
    """The Python verifier docs/webhooks.md gives integrators, run as written."""
    text = (ROOT / "docs" / "webhooks.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - our own documentation's example
    return scope["verify"]


def test_batches_are_signed_as_documented_and_keyed_by_their_accounts(tmp_path, receiver,
                                                                      monkeypatch):
    two_runs(tmp_path)
    hook = receiver(lambda n: 200)
    settings = hook_settings(tmp_path, hook.url, monkeypatch, webhook_batch_size=3)
    report = publish(settings, ScoreHistory(history_dir(tmp_path)), NEXT_MONDAY)

    assert (report.batches, report.delivered, report.dead_lettered, report.waiting) == (2, 2, 0, 0)
    assert [hook.accounts(0), hook.accounts(1)] == [["A1", "A3", "A4"], ["A5"]]
    verify = documented_verifier()
    headers, body = hook.requests[0]
    assert verify(body, headers["X-Propensity-Timestamp"], headers["X-Propensity-Signature"],
                  SECRET)
    assert not verify(body + b" ", headers["X-Propensity-Timestamp"],
                      headers["X-Propensity-Signature"], SECRET)
    assert not verify(body, headers["X-Propensity-Timestamp"], headers["X-Propensity-Signature"],
                      "another secret")
    assert not verify(body, str(int(headers["X-Propensity-Timestamp"]) - 3600),
                      headers["X-Propensity-Signature"], SECRET)  # stale: a replay

    sent = json.loads(body)
    assert (sent["as_of"], sent["previous_as_of"], sent["model_versions"]) == (
        "2024-03-11", "2024-03-04", {"churn": "3", "upsell": "1"})
    first = sent["accounts"][0]
    assert (first["churn_probability"], first["previous_churn_probability"],
            first["changes"]) == (0.35, 0.30, ["churn"])
    assert first["reasons"]["churn"]["raising"][0]["feature"] == "events_30d"
    assert first["idempotency_key"] == account_key("A1", NEXT_MONDAY,
                                                   {"churn": "3", "upsell": "1"})
    assert SECRET not in body.decode() and SECRET not in json.dumps(headers)

    again = publish(settings, ScoreHistory(history_dir(tmp_path)), NEXT_MONDAY)
    assert again.delivered == 2 and hook.key(2) == hook.key(0)  # same rows, same key
    publish_run(tmp_path, run_rows(NEXT_MONDAY, AFTER), NEXT_MONDAY, churn_version="4")
    publish(settings, ScoreHistory(history_dir(tmp_path)), NEXT_MONDAY)
    assert hook.key(4) != hook.key(0)  # another model version: other scores, another key


def test_a_receiver_failing_twice_gets_the_batch_again_with_the_same_key(tmp_path, receiver,
                                                                        monkeypatch, caplog):
    two_runs(tmp_path)
    hook = receiver(lambda n: 503 if n < 2 else 200)
    settings = hook_settings(tmp_path, hook.url, monkeypatch)
    report = publish(settings, ScoreHistory(history_dir(tmp_path)), NEXT_MONDAY)

    assert (report.batches, report.delivered, report.dead_lettered) == (1, 1, 0)
    assert len(hook.requests) == 3
    assert {hook.key(k) for k in range(3)} == {hook.key(0)}
    assert {hook.requests[k][1] for k in range(3)} == {hook.requests[0][1]}
    assert not dead_letter(settings).path.exists()
    assert SECRET not in caplog.text


def test_a_receiver_that_never_answers_ends_in_the_dead_letter_and_the_next_run_retries_it(
        tmp_path, receiver, monkeypatch):
    two_runs(tmp_path)
    silent = receiver(lambda n: None)
    settings = hook_settings(tmp_path, silent.url, monkeypatch, webhook_timeout_seconds=0.2,
                             webhook_attempts=2)
    report = publish(settings, ScoreHistory(history_dir(tmp_path)), NEXT_MONDAY)

    assert (report.batches, report.delivered, report.dead_lettered, report.waiting) == (1, 0, 1, 1)
    silent.wait_for(2)
    assert len(silent.requests) == 2
    [letter] = dead_letter(settings).entries()
    assert (letter["url"], letter["idempotency_key"], letter["accounts"], letter["attempts"]) \
        == (silent.url, silent.key(0), 4, 1)
    assert letter["error"] == "no answer within 0.2 s (after 2 tries)"
    assert letter["body"].encode() == silent.requests[0][1]
    assert SECRET not in dead_letter(settings).path.read_text()

    silent.answer = lambda n: 200  # the CRM is back for the next run, a week later
    later = date(2024, 3, 18)
    publish_run(tmp_path, run_rows(later, {**AFTER, "A1": (0.60, 0.10, "high")}), later)
    next_run = publish(settings, ScoreHistory(history_dir(tmp_path)), later)

    assert (next_run.retried, next_run.recovered, next_run.delivered, next_run.waiting) \
        == (1, 1, 1, 0)
    assert len(silent.requests) == 4
    assert silent.key(2) == silent.key(0)  # the dead letter first, as it was
    assert silent.requests[2][1] == silent.requests[0][1]
    assert silent.accounts(3) == ["A1"]  # then the new run's changes
    assert not dead_letter(settings).path.exists()


def test_a_refused_batch_is_not_retried_and_waits_in_the_dead_letter(tmp_path, receiver,
                                                                     monkeypatch):
    two_runs(tmp_path)
    hook = receiver(lambda n: 400)
    settings = hook_settings(tmp_path, hook.url, monkeypatch)
    report = publish(settings, ScoreHistory(history_dir(tmp_path)), NEXT_MONDAY)
    assert (report.dead_lettered, len(hook.requests)) == (1, 1)
    assert dead_letter(settings).entries()[0]["error"] == "answered HTTP 400 (after 1 try)"
    again = publish(settings, ScoreHistory(history_dir(tmp_path)), NEXT_MONDAY)
    assert (again.retried, again.recovered, again.waiting) == (1, 0, 1)  # one line, not two
    assert (again.batches, again.dead_lettered, len(hook.requests)) == (1, 1, 2)  # tried once
    assert dead_letter(settings).entries()[0]["attempts"] == 2


def test_a_spent_time_budget_keeps_the_rest_for_the_next_run(tmp_path, receiver, monkeypatch):
    two_runs(tmp_path)
    silent = receiver(lambda n: None)
    settings = hook_settings(tmp_path, silent.url, monkeypatch, webhook_batch_size=1,
                             webhook_timeout_seconds=30, webhook_time_budget_seconds=1)
    report = publish(settings, ScoreHistory(history_dir(tmp_path)), NEXT_MONDAY)
    assert (report.batches, report.dead_lettered, report.waiting) == (4, 4, 4)
    assert report.seconds_webhooks < 5  # the budget, not 4 batches x 4 tries x 30 s
    letters = dead_letter(settings).entries()
    assert [e["accounts"] for e in letters] == [1, 1, 1, 1]
    assert letters[0]["error"].startswith("no answer within")  # the budget cut the timeout
    assert [e["error"] for e in letters[1:]] == [
        "not tried: the run's webhook time budget was spent"] * 3
    assert len(silent.requests) <= 1


def test_an_unset_secret_is_a_configuration_error_before_anything_is_written(tmp_path,
                                                                             monkeypatch):
    two_runs(tmp_path)
    monkeypatch.delenv("CRM_HOOK_SECRET", raising=False)
    settings = settings_for(tmp_path, webhooks=[{"url": "https://user:pw@crm.example/h?token=t",
                                                 "secret_env": "CRM_HOOK_SECRET"}])
    with pytest.raises(DeliveryError) as error:
        publish(settings, ScoreHistory(history_dir(tmp_path)), NEXT_MONDAY)
    assert str(error.value) == (
        "webhooks: https://crm.example/h is signed with the secret in the environment variable "
        "CRM_HOOK_SECRET, which is not set: set it, or remove the webhook from the settings")
    assert not (tmp_path / "delivery").exists()


def test_a_webhook_url_must_be_http_and_given_once(tmp_path):
    with pytest.raises(ValueError, match="give an http:// or https:// URL"):
        settings_for(tmp_path, webhooks=[{"url": "ftp://crm.example/", "secret_env": "S"}])
    twice = {"url": "https://crm.example/h", "secret_env": "S"}
    with pytest.raises(ValueError, match="https://crm.example/h is listed twice"):
        settings_for(tmp_path, webhooks=[twice, twice])


def test_publishing_a_run_that_is_not_in_the_history_says_so(tmp_path):
    with pytest.raises(DeliveryError, match="nothing to publish: no scores for as_of=2024-03-11"):
        publish(settings_for(tmp_path), ScoreHistory(history_dir(tmp_path)), NEXT_MONDAY)


# --- on real batch scores ---------------------------------------------------------------------
def test_two_scored_runs_of_the_served_book_publish_every_account_and_the_changed_ones(
        served_data, tmp_path, receiver, monkeypatch):
    """The batch files of two real runs, scored by the champions: the files hold every account
    with the generated CRM ids, and the changed set is the rule's, recomputed here by hand."""
    from serving.batch import score_duckdb

    runs = (date(2025, 4, 1), date(2025, 5, 1))
    scoring = ServingSettings(data_dir=served_data,
                              mlflow_tracking_uri=f"sqlite:///{served_data / 'mlflow/mlflow.db'}")
    for as_of in runs:
        score_duckdb(scoring, as_of, str(history_dir(tmp_path)))
    hook = receiver(lambda n: 200)
    monkeypatch.setenv("CRM_HOOK_SECRET", SECRET)
    settings = ServingSettings(**{
        **scoring.model_dump(), "delivery_dir": tmp_path / "delivery", "webhook_batch_size": 50,
        "webhooks": [{"url": hook.url, "secret_env": "CRM_HOOK_SECRET"}]})
    history = ScoreHistory(history_dir(tmp_path))
    report = publish(settings, history, runs[1])

    before, after = history.read(runs[0]), history.read(runs[1])
    full = pq.read_table(report.folder / "scores.parquet").to_pandas()
    assert full["account_id"].tolist() == after["account_id"].tolist()
    assert full["external_id"].tolist() == [a.replace("A", "CRM", 1) for a in full.account_id]
    pd.testing.assert_frame_equal(full.drop(columns="external_id"), after)

    old = before.set_index("account_id")
    expected = []
    for row in after.itertuples():
        if row.account_id not in old.index:
            expected.append(row.account_id)
            continue
        was = old.loc[row.account_id]
        if (round(abs(row.churn_probability - was.churn_probability), 9) >= 0.05
                or round(abs(row.upsell_probability - was.upsell_probability), 9) >= 0.05
                or row.risk_tier != was.risk_tier):
            expected.append(row.account_id)
    changed = pq.read_table(report.folder / "changed.parquet").to_pandas()
    assert 0 < len(expected) < len(after)
    assert changed["account_id"].tolist() == expected
    assert (report.accounts, report.changed, report.delivered) == (
        len(after), len(expected), -(-len(expected) // 50))
    assert [a for k in range(len(hook.requests)) for a in hook.accounts(k)] == expected
