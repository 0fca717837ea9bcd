"""`propensity run`: the daily job on the shared served book (its raw tables and MLflow store,
read only), each test in its own data directory."""

from __future__ import annotations

import json
import os
import shutil
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from features.store import FeatureStore
from propensity_cli import app
from serving.daily.lock import RunLocked, run_lock
from serving.daily.manifest import lock_path, manifest_path, published_version, read_manifest
from serving.daily.run import ALL_STEPS, RunFailed, check_date, run_daily
from serving.daily.steps import RunContext, StepFailed, pull, reload, retain, retrain
from serving.history import ScoreHistory, history_dir
from serving.settings import ServingSettings

DATES = (date(2025, 4, 17), date(2025, 4, 24), date(2025, 5, 1))  # a week apart, <= extraction
runner = CliRunner()


def book_dir(root: Path, served_data: Path) -> Path:
    """A data directory whose raw/ is the served book's (read only)."""
    root.mkdir(parents=True, exist_ok=True)
    os.symlink(served_data / "raw", root / "raw")
    return root


def settings_in(data: Path, served_data: Path, **extra) -> ServingSettings:
    tracking = f"sqlite:///{served_data / 'mlflow' / 'mlflow.db'}"
    return ServingSettings(data_dir=data, mlflow_tracking_uri=tracking, auth_enabled=False,
                           **extra)


def cli_env(served_data: Path) -> dict[str, str]:
    return {"PROPENSITY_MLFLOW_TRACKING_URI": f"sqlite:///{served_data / 'mlflow' / 'mlflow.db'}"}


def state_of(data: Path, day: date) -> dict:
    """What a rerun must leave untouched: published versions, files' mtimes, the manifest."""
    features = FeatureStore(data / "features").path(day)
    history = ScoreHistory(history_dir(data)).path(day)
    return {
        "snapshot": published_version(features),
        "history": published_version(history),
        "mtimes": {str(p): p.stat().st_mtime_ns
                   for folder in (features, history) for p in Path(folder).resolve().iterdir()},
        "manifest": manifest_path(data, day).read_text(),
        "manifest_mtime": manifest_path(data, day).stat().st_mtime_ns,
    }


@pytest.fixture(scope="module")
def three_runs(served_data, tmp_path_factory):
    """Three runs a week apart; the publish step delivers through a recording hook."""
    data = book_dir(tmp_path_factory.mktemp("daily") / "data", served_data)
    delivered: list[date] = []

    def deliver(ctx: RunContext) -> str:
        delivered.append(ctx.as_of)
        return f"delivered {ctx.as_of}"

    reports = {}
    for day in DATES:
        ctx = RunContext(settings_in(data, served_data), day, deliver=deliver)
        reports[day] = run_daily(ctx)
    return data, reports, delivered


@pytest.mark.slow
def test_a_run_does_every_step_and_records_its_inputs(three_runs):
    data, reports, delivered = three_runs
    first = {r.step: r.status for r in reports[DATES[0]]}
    assert first == {"pull": "skipped", "validate": "done", "build": "done", "score": "done",
                     "publish": "done", "retain": "skipped", "monitor": "skipped",
                     "retrain": "skipped", "reload": "skipped"}
    # this data directory holds the runs' snapshots only, not the models' training window
    monitor = next(r for r in reports[DATES[0]] if r.step == "monitor")
    assert monitor.detail.startswith("not monitored: the training window ")
    assert delivered == list(DATES)
    manifest = read_manifest(data, DATES[2])
    assert manifest["as_of"] == "2025-05-01"
    steps = manifest["steps"]
    assert steps["build"]["outputs"]["snapshot_version"] == published_version(
        FeatureStore(data / "features").path(DATES[2]))
    assert steps["score"]["inputs"]["snapshot_version"] == \
        steps["build"]["outputs"]["snapshot_version"]
    assert steps["score"]["outputs"]["history_version"] == published_version(
        ScoreHistory(history_dir(data)).path(DATES[2]))
    assert steps["publish"]["outputs"] == {"detail": "delivered 2025-05-01"}


@pytest.mark.slow
def test_history_holds_one_entry_per_account_and_run_equal_to_the_batch_file(
        three_runs, served_data, tmp_path):
    from serving.batch import score_duckdb

    data, _, _ = three_runs
    history = ScoreHistory(history_dir(data))
    assert history.dates() == list(DATES)
    store = FeatureStore(data / "features")
    runs_of: dict[str, int] = {}
    for day in DATES:
        for account in store.read(day)["account_id"]:
            runs_of[account] = runs_of.get(account, 0) + 1
    stacked = pd.concat([history.read(d) for d in DATES])
    assert stacked.groupby("account_id").size().to_dict() == runs_of

    batch = score_duckdb(settings_in(data, served_data), DATES[1], str(tmp_path))
    expected = pq.read_table(Path(batch.path) / "part-0.parquet").to_pandas()
    pd.testing.assert_frame_equal(history.read(DATES[1]), expected)

    account = expected["account_id"].iloc[0]
    rows = history.account(account)
    assert [pd.Timestamp(d).date() for d in rows["as_of"]] == list(DATES)
    assert rows["churn_probability"].iloc[1] == expected["churn_probability"].iloc[0]
    assert rows["model_versions"].iloc[0] == history.model_versions(DATES[0])
    assert rows["catalogue_version"].iloc[0] == store.catalogue_version(DATES[0])


@pytest.mark.slow
def test_rerunning_a_date_is_a_no_op_reported_as_json_lines(three_runs, served_data):
    data, _, _ = three_runs
    before = state_of(data, DATES[2])
    result = runner.invoke(app, ["run", "--as-of", "2025-05-01", "--data-dir", str(data)],
                           env=cli_env(served_data))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["step"] for line in lines] == list(ALL_STEPS)
    assert {line["status"] for line in lines} == {"skipped"}
    assert all(set(line) == {"as_of", "step", "status", "seconds", "detail"} for line in lines)
    assert lines[4]["detail"] == "these scores were delivered already"
    assert state_of(data, DATES[2]) == before  # same versions, mtimes and manifest


@pytest.mark.slow
def test_force_redoes_the_steps(three_runs, served_data):
    data, _, _ = three_runs
    before = state_of(data, DATES[0])
    ctx = RunContext(settings_in(data, served_data), DATES[0], force=True)
    statuses = {r.step: r.status for r in run_daily(ctx)}
    assert statuses["validate"] == statuses["build"] == statuses["score"] == "done"
    after = state_of(data, DATES[0])
    assert after["snapshot"] != before["snapshot"] and after["history"] != before["history"]


@pytest.mark.slow
def test_publish_is_skipped_when_these_scores_were_delivered(three_runs, served_data):
    data, _, delivered = three_runs
    calls = len(delivered)
    ctx = RunContext(settings_in(data, served_data), DATES[1],
                     deliver=lambda c: delivered.append(c.as_of) or "again")
    reports = {r.step: r for r in run_daily(ctx)}
    assert reports["publish"].status == "skipped"
    assert reports["publish"].detail == "these scores were delivered already"
    assert len(delivered) == calls


@pytest.mark.slow
def test_history_route_answers_oldest_first_404_and_422(three_runs):
    from serving.app import create_app

    data, _, _ = three_runs
    history = ScoreHistory(history_dir(data))
    account = history.read(DATES[2])["account_id"].iloc[0]
    settings = ServingSettings(data_dir=data, auth_enabled=False)
    client = TestClient(create_app(settings, load_on_start=False))

    answer = client.get(f"/v1/accounts/{account}/history")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["account_id"] == account
    assert [i["as_of"] for i in body["items"]] == [d.isoformat() for d in DATES]
    last = history.read(DATES[2]).set_index("account_id").loc[account]
    item = body["items"][2]
    assert item["churn_probability"] == round(last["churn_probability"], 6)
    assert item["arr_at_risk"] == last["arr_at_risk"]
    assert item["risk_tier"] == last["risk_tier"]
    assert item["model_versions"] == history.model_versions(DATES[2])
    assert item["reasons"]["churn"] == json.loads(last["churn_reasons"])

    window = client.get(f"/v1/accounts/{account}/history",
                        params={"from": "2025-04-20", "to": "2025-04-30"}).json()
    assert [i["as_of"] for i in window["items"]] == ["2025-04-24"]
    empty = client.get(f"/v1/accounts/{account}/history", params={"from": "2025-06-01"})
    assert empty.status_code == 200 and empty.json()["items"] == []

    unknown = client.get("/v1/accounts/NOPE/history")
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == {
        "error": "unknown_account", "message": "account 'NOPE' is in no run of the score history"}
    reversed_ = client.get(f"/v1/accounts/{account}/history",
                           params={"from": "2025-05-01", "to": "2025-04-01"})
    assert reversed_.status_code == 422
    assert reversed_.json()["detail"][0]["loc"] == ["query", "from"]
    assert reversed_.json()["detail"][0]["msg"] == "from (2025-05-01) is after to (2025-04-01)"
    not_iso = client.get(f"/v1/accounts/{account}/history", params={"to": "01/05/2025"})
    assert not_iso.status_code == 422
    assert not_iso.json()["detail"][0]["loc"] == ["query", "to"]


@pytest.mark.slow
def test_a_second_run_exits_while_the_first_holds_the_lock(tmp_path, served_data):
    data = book_dir(tmp_path / "data", served_data)
    with run_lock(lock_path(data)):
        result = runner.invoke(app, ["run", "--as-of", "2025-05-01", "--data-dir", str(data)],
                               env=cli_env(served_data))
        assert result.exit_code == 1
        assert f"another run holds {lock_path(data)} (pid {os.getpid()})" in " ".join(
            result.stderr.split())
        with pytest.raises(RunLocked):
            run_daily(RunContext(settings_in(data, served_data), DATES[2]))
    assert not (history_dir(data)).exists()


@pytest.mark.slow
def test_a_run_whose_raw_data_fail_validation_publishes_nothing(three_runs, served_data,
                                                                 tmp_path):
    source, _, _ = three_runs
    data = tmp_path / "data"
    data.mkdir()
    shutil.copytree(served_data / "raw", data / "raw")
    accounts = pq.read_table(data / "raw" / "accounts.parquet")
    (data / "raw" / "accounts.parquet").chmod(0o644)
    pq.write_table(pa_concat(accounts, accounts.slice(0, 1)), data / "raw" / "accounts.parquet")
    shutil.copytree(source / "history", data / "history", symlinks=True)
    before = sorted(p.name for p in (data / "history" / ".versions").iterdir())
    result = runner.invoke(app, ["run", "--as-of", "2025-05-01", "--data-dir", str(data)],
                           env=cli_env(served_data))
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1]["step"] == "validate" and lines[-1]["status"] == "failed"
    assert "duplicate key" in lines[-1]["detail"]
    message = " ".join(result.stderr.split())
    assert "run of 2025-05-01: step validate failed:" in message
    assert sorted(p.name for p in (data / "history" / ".versions").iterdir()) == before
    assert not (data / "features").exists()
    assert not manifest_path(data, DATES[2]).exists()


def pa_concat(*tables):
    import pyarrow as pa

    return pa.concat_tables(tables)


@pytest.mark.slow
def test_a_run_killed_in_the_score_step_leaves_no_history_and_no_manifest(
        tmp_path, served_data, monkeypatch):
    import serving.batch

    data = book_dir(tmp_path / "data", served_data)
    publish = serving.batch.write_local_partition

    def dying(out, as_of, write, note):
        def write_then_die(folder):  # the partition's file is written, then the process dies
            write(folder)
            raise RuntimeError("disk pulled out")
        return publish(out, as_of, write_then_die, note)

    monkeypatch.setattr(serving.batch, "write_local_partition", dying)
    with pytest.raises(RunFailed, match="step score failed: RuntimeError: disk pulled out"):
        run_daily(RunContext(settings_in(data, served_data), DATES[2]))
    history = ScoreHistory(history_dir(data))
    assert history.dates() == []
    assert list((history.root / ".versions").iterdir()) == []  # no partial version left
    assert not manifest_path(data, DATES[2]).exists()


# --- steps on their own: retention, reload, the date ------------------------------------------
def _publish(root: Path, day: date) -> None:
    import pyarrow as pa

    from serving.batch import write_local_partition

    table = pa.table({"account_id": ["A"], "as_of": [day], "churn_probability": [0.5]})
    write_local_partition(root, day, lambda d: pq.write_table(table, d / "part-0.parquet"),
                          json.dumps({"models": {"churn": {"uri": "u", "version": "1"}}}))


def test_retention_removes_runs_older_than_the_setting_before_the_newest(tmp_path):
    for day in ("2025-01-01", "2025-03-01", "2025-03-25", "2025-04-01"):
        _publish(history_dir(tmp_path), date.fromisoformat(day))
    keep_all = RunContext(ServingSettings(data_dir=tmp_path), date(2025, 4, 1))
    assert retain(keep_all).status == "skipped"
    ctx = RunContext(ServingSettings(data_dir=tmp_path, history_keep_days=31), date(2025, 4, 1))
    outcome = retain(ctx)
    assert (outcome.status, outcome.detail) == (
        "done", "removed 1 run(s) before 2025-03-01: 2025-01-01 .. 2025-01-01")
    history = ScoreHistory(history_dir(tmp_path))
    assert history.dates() == [date(2025, 3, 1), date(2025, 3, 25), date(2025, 4, 1)]
    assert sorted(p.name.split("@")[0] for p in (history.root / ".versions").iterdir()
                  if "@" in p.name) == ["as_of=2025-03-01", "as_of=2025-03-25",
                                        "as_of=2025-04-01"]
    assert retain(ctx).status == "skipped"


class _Reload(BaseHTTPRequestHandler):
    answers: list[tuple[int, dict]] = []
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization")})
        status, body = type(self).answers.pop(0)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        return None


@pytest.fixture()
def reload_server():
    server = HTTPServer(("127.0.0.1", 0), _Reload)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Reload.answers, _Reload.seen = [], []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_reload_posts_with_the_admin_key_and_reports_the_answer(tmp_path, reload_server):
    _Reload.answers = [
        (200, {"reloaded": True, "as_of": "2025-05-01", "error": None,
               "model_versions": {"churn": "3", "upsell": "2"}}),
        (409, {"reloaded": False, "as_of": "2025-04-01", "model_versions": {},
               "error": "SnapshotRefused: too few accounts"}),
    ]
    settings = ServingSettings(data_dir=tmp_path, admin_api_key="sk-admin")
    ctx = RunContext(settings, date(2025, 5, 1), reload_url=reload_server + "/")
    outcome = reload(ctx)
    assert (outcome.status, outcome.detail) == (
        "done", f"{reload_server}/v1/admin/reload: serving as_of 2025-05-01 with churn v3, "
                "upsell v2")
    assert _Reload.seen == [{"path": "/v1/admin/reload", "auth": "Bearer sk-admin"}]
    ctx.previous = {"reload": outcome.record}
    assert reload(ctx).status == "skipped"
    ctx.force = True
    with pytest.raises(StepFailed, match=r"answered 409: SnapshotRefused: too few accounts"):
        reload(ctx)


def test_reload_without_an_admin_key_or_server_fails_naming_why(tmp_path):
    ctx = RunContext(ServingSettings(data_dir=tmp_path), date(2025, 5, 1),
                     reload_url="http://127.0.0.1:9")
    with pytest.raises(StepFailed, match="no admin key: set admin_api_key"):
        reload(ctx)
    ctx.settings = ServingSettings(data_dir=tmp_path, admin_api_key="k")
    with pytest.raises(StepFailed, match=r"cannot reach http://127.0.0.1:9/v1/admin/reload"):
        reload(ctx)


@pytest.mark.slow
def test_pull_takes_a_new_export_from_the_configured_source_once_per_date(tmp_path,
                                                                          served_data):
    settings = ServingSettings(data_dir=tmp_path, source=str(served_data / "raw"))
    ctx = RunContext(settings, date(2025, 5, 1))
    outcome = pull(ctx)
    assert outcome.status == "done"
    raw = tmp_path / "raw"
    assert raw.is_symlink() and Path(os.path.realpath(raw)).parent == tmp_path / "exports"
    assert outcome.record["outputs"]["export"] == os.path.realpath(raw)
    assert outcome.record["outputs"]["rows"]["accounts"] == pq.read_metadata(
        served_data / "raw" / "accounts.parquet").num_rows
    ctx.previous = {"pull": outcome.record}
    again = pull(ctx)
    assert again.status == "skipped"
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == [
        Path(os.path.realpath(raw)).name]
    no_source = RunContext(ServingSettings(data_dir=tmp_path), date(2025, 5, 1))
    assert pull(no_source).detail == "no source configured (setting source): using raw/ as it is"


def test_a_date_in_the_future_is_refused():
    check_date(date(2025, 5, 1), today=date(2025, 5, 1))
    with pytest.raises(RunFailed, match=r"step validate failed: as_of 2025-05-02 is in the "
                                        r"future \(today is 2025-05-01, UTC\)"):
        check_date(date(2025, 5, 2), today=date(2025, 5, 1))


@pytest.mark.slow
@pytest.mark.spark
def test_a_run_on_spark_builds_and_scores_into_the_same_history(tmp_path, served_data,
                                                                monkeypatch):
    from tests.spark_session import spark_test_settings, start_spark

    start_spark()  # the run reuses this small local session
    monkeypatch.setenv("PROPENSITY_SPARK_MASTER", spark_test_settings().spark_master)
    data = book_dir(tmp_path / "data", served_data)
    args = ["run", "--engine", "spark", "--as-of", "2025-05-01", "--data-dir", str(data)]
    result = runner.invoke(app, args, env=cli_env(served_data))
    assert result.exit_code == 0, result.output
    statuses = {json.loads(line)["step"]: json.loads(line)["status"]
                for line in result.stdout.splitlines()}
    assert statuses["build"] == statuses["score"] == "done"
    history = ScoreHistory(history_dir(data))
    scores = history.read(DATES[2])
    snapshot = FeatureStore(data / "features")
    assert sorted(scores["account_id"]) == sorted(snapshot.read(DATES[2])["account_id"])
    assert history.note(DATES[2])["engine"] == "spark"
    assert history.catalogue_version(DATES[2]) == snapshot.catalogue_version(DATES[2])
    again = runner.invoke(app, args, env=cli_env(served_data))
    assert {json.loads(line)["status"] for line in again.stdout.splitlines()} == {"skipped"}


def test_run_one_runs_a_single_step_for_an_orchestrator(tmp_path):
    from serving.daily.run import run_one

    for day in ("2025-01-01", "2025-04-01"):
        _publish(history_dir(tmp_path), date.fromisoformat(day))
    settings = ServingSettings(data_dir=tmp_path, history_keep_days=30)
    report = run_one("retain", date(2025, 4, 1), settings)
    assert (report.step, report.status) == ("retain", "done")
    assert ScoreHistory(history_dir(tmp_path)).dates() == [date(2025, 4, 1)]
    assert read_manifest(tmp_path, date(2025, 4, 1))["steps"] == {}
    with pytest.raises(ValueError, match="unknown step"):
        run_one("train", date(2025, 4, 1), settings)


def test_bad_options_are_usage_errors_and_a_missing_export_names_the_step(tmp_path):
    for args, message in (
            (["--engine", "pandas"], "--engine 'pandas': choose duckdb or spark"),
            (["--log-format", "xml"], "--log-format 'xml': choose auto, rich or json"),
            (["--as-of", "May 1st"], "'May 1st': not a date")):
        result = runner.invoke(app, ["run", *args, "--data-dir", str(tmp_path)])
        assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    rich = runner.invoke(app, ["run", "--as-of", "2025-05-01", "--log-format", "rich",
                               "--data-dir", str(tmp_path)])
    assert rich.exit_code == 1
    text = " ".join(rich.stderr.split())
    assert "pull skipped" in text and "validate failed" in text
    assert (f"error: run of 2025-05-01: step validate failed: no raw data at {tmp_path / 'raw'}"
            in text)
    assert rich.stdout == ""
    assert not manifest_path(tmp_path, date(2025, 5, 1)).exists()


@pytest.mark.slow
def test_the_command_delivers_the_runs_crm_files_unless_switched_off(served_data, tmp_path):
    data = book_dir(tmp_path / "data", served_data)
    result = runner.invoke(app, ["run", "--as-of", "2025-05-01", "--data-dir", str(data)],
                           env=cli_env(served_data))
    assert result.exit_code == 0, result.output
    publish = [json.loads(line) for line in result.stdout.splitlines()][4]
    scored = len(ScoreHistory(history_dir(data)).read(DATES[2]))
    assert (publish["step"], publish["status"]) == ("publish", "done")
    assert publish["detail"].startswith(f"{scored:,} of {scored:,} accounts changed")  # all new
    files = data / "delivery" / "files" / "as_of=2025-05-01"
    assert len(pd.read_parquet(files / "scores.parquet")) == scored
    assert len(pd.read_csv(files / "changed.csv")) == scored

    quiet = book_dir(tmp_path / "quiet", served_data)
    result = runner.invoke(app, ["run", "--as-of", "2025-05-01", "--data-dir", str(quiet)],
                           env={**cli_env(served_data), "PROPENSITY_DELIVERY_FILES": "false"})
    assert result.exit_code == 0, result.output
    publish = [json.loads(line) for line in result.stdout.splitlines()][4]
    assert (publish["status"], publish["detail"]) == ("skipped", "no delivery configured")
    assert not (quiet / "delivery").exists()


# --- the monitor's triggers and retraining --------------------------------------------------------
def fired(ctx: RunContext, triggers: dict) -> RunContext:
    """``ctx`` as if its monitor step had just decided ``triggers``."""
    ctx.records["monitor"] = {"inputs": {}, "outputs": {"triggers": triggers}}
    return ctx


TRIGGERS = {"churn": {"retrain": True, "reasons": ["drift: usage features on alert"]},
            "upsell": {"retrain": False, "reasons": []}}


def test_a_fired_trigger_retrains_that_task_through_the_hook_and_records_why(tmp_path):
    calls = []

    def trainer(settings, task, reasons):
        calls.append((task, reasons))
        return f"{task}: v7 -> champion"

    ctx = fired(RunContext(ServingSettings(data_dir=tmp_path), DATES[0], retrain=trainer),
                TRIGGERS)
    outcome = retrain(ctx)
    assert calls == [("churn", ["drift: usage features on alert"])]
    assert (outcome.status, outcome.detail) == ("done", "churn: v7 -> champion")
    assert outcome.record["outputs"]["why"] == {"churn": ["drift: usage features on alert"]}


@pytest.mark.parametrize(("options", "settings", "detail"), [
    ({"no_retrain": True}, {}, "retraining is off (--no-retrain); triggers: churn: drift"),
    ({}, {"retrain_enabled": False}, "retraining is off (retrain_enabled = false)"),
])
def test_no_retrain_and_the_setting_report_the_triggers_without_training(tmp_path, options,
                                                                        settings, detail):
    calls = []
    ctx = fired(RunContext(ServingSettings(data_dir=tmp_path, **settings), DATES[0],
                           retrain=lambda *a: calls.append(a) or "", **options), TRIGGERS)
    outcome = retrain(ctx)
    assert calls == [] and outcome.status == "skipped" and outcome.detail.startswith(detail)


def test_no_fired_trigger_trains_nothing_and_a_failed_retrain_fails_the_step(tmp_path):
    quiet = {"churn": {"retrain": False, "reasons": []}}
    ctx = fired(RunContext(ServingSettings(data_dir=tmp_path), DATES[0],
                           retrain=lambda *a: pytest.fail("trained")), quiet)
    assert (retrain(ctx).status, retrain(ctx).detail) == ("skipped", "no trigger fired")

    def broken(settings, task, reasons):
        raise ValueError("no labelled snapshot")

    ctx = fired(RunContext(ServingSettings(data_dir=tmp_path), DATES[0], retrain=broken),
                TRIGGERS)
    with pytest.raises(StepFailed, match="retraining failed for churn: no labelled snapshot"):
        retrain(ctx)


@pytest.mark.slow
def test_a_run_beside_the_training_window_monitors_and_acts_on_its_triggers(served_data,
                                                                          tmp_path):
    data = book_dir(tmp_path / "data", served_data)
    shutil.copytree(served_data / "features", data / "features", symlinks=True)
    calls = []

    def trainer(settings, task, reasons):
        calls.append(task)
        return f"{task}: retrained"

    reports = {r.step: r for r in run_daily(RunContext(settings_in(data, served_data),
                                                       DATES[2], retrain=trainer))}
    assert reports["monitor"].status == "done", reports["monitor"].detail
    saved = json.loads((data / "monitoring" / "latest.json").read_text())
    assert saved["as_of"] == str(DATES[2])
    due = sorted(t for t, d in saved["triggers"].items() if d["retrain"] or d["recalibrate"])
    assert sorted(calls) == due  # the hook trains exactly the tasks whose trigger fired
    steps = read_manifest(data, DATES[2])["steps"]
    assert steps["monitor"]["outputs"]["triggers"].keys() == saved["triggers"].keys()
    if due:
        assert reports["retrain"].status == "done"
        assert sorted(steps["retrain"]["outputs"]["why"]) == due
    else:
        assert (reports["retrain"].status, reports["retrain"].detail) == (
            "skipped", "no trigger fired")


@pytest.mark.slow
def test_the_composition_roots_retraining_trains_through_the_gate_and_tags_why(served_data,
                                                                             tmp_path):
    """What `propensity run` calls when a trigger fires: a real challenger of the task, judged
    by the champion/challenger gate, the trigger's reasons on its MLflow run."""
    import mlflow

    from propensity_cli import retrain_task

    data = tmp_path / "book"
    shutil.copytree(served_data, data, symlinks=True)
    settings = ServingSettings(data_dir=data, auth_enabled=False)
    line = retrain_task(settings, "churn", ["drift: usage features on alert"])
    assert line.startswith("churn: v")
    assert any(alias in line for alias in ("-> champion", "-> challenger"))
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{data / 'mlflow' / 'mlflow.db'}")
    try:
        runs = mlflow.search_runs(search_all_experiments=True,
                                  filter_string="tags.retrain_reason != ''")
    finally:
        mlflow.set_tracking_uri(previous)
    assert runs["tags.retrain_reason"].tolist() == ["drift: usage features on alert"]
