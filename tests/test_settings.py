"""Settings split by owner over one set of sources: one TOML file and the PROPENSITY_* variables
serve the features, training and serving settings alike."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from features.settings import FILE_KEYS, Settings
from serving.settings import ServingSettings
from training.settings import TrainingSettings

#: A propensity.toml written for the single Settings class of before the split: every key.
EVERY_KEY = """\
data_dir = "{data_dir}"
seed = 7
windows_days = [7, 30]
event_types = ["login", "export"]
gross_margin = 0.75
build_workers = 2
duckdb_threads = 2
duckdb_memory_limit = "1GB"
mlflow_tracking_uri = "sqlite:////srv/mlflow.db"
audit_log_path = "/var/log/propensity-audit.log"
spark_master = "local[2]"
spark_conf = {{"spark.driver.memory" = "2g"}}
horizon_days = 60
upsell_min_growth = 0.2
promotion_max_ece_increase = 0.02
auth_enabled = false
api_keys_path = "/etc/propensity/keys.json"
max_batch_accounts = 50
max_body_bytes = 100000
trust_forwarded_proto = true
model_uris = {{churn = "models:/propensity-churn/3"}}
reload_max_account_drop = 0.25
reasons_per_direction = 2
unknown_categories = "missing"
max_missing_importance = 0.4
"""


@pytest.fixture()
def config(tmp_path, monkeypatch):
    """Write the TOML file PROPENSITY_CONFIG names; no PROPENSITY_* variable from outside."""
    for name in [n for n in os.environ if n.startswith("PROPENSITY_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "propensity.toml"
    monkeypatch.setenv("PROPENSITY_CONFIG", str(path))

    def write(text: str) -> Path:
        path.write_text(text.format(data_dir=tmp_path / "book"))
        return path
    return write


def test_the_file_keys_are_every_packages_fields():
    """FILE_KEYS names what training and serving read (features may not import them)."""
    base, training = set(Settings.model_fields), set(TrainingSettings.model_fields)
    serving = set(ServingSettings.model_fields)
    assert base | training | serving == FILE_KEYS
    assert training & serving == base  # each key has one owner


def test_a_file_of_every_key_serves_each_package(config, tmp_path):
    config(EVERY_KEY)
    features, training, serving = Settings(), TrainingSettings(), ServingSettings()
    for settings in (features, training, serving):
        assert settings.data_dir == tmp_path / "book"
        assert (settings.seed, settings.windows_days, settings.gross_margin) == (7, (7, 30), 0.75)
        assert settings.tracking_uri == "sqlite:////srv/mlflow.db"
        assert settings.audit_path == Path("/var/log/propensity-audit.log")
        assert settings.spark_conf == {"spark.driver.memory": "2g"}
    assert not hasattr(features, "horizon_days") and not hasattr(features, "auth_enabled")
    assert (training.horizon_days, training.upsell_min_growth,
            training.promotion_max_ece_increase) == (60, 0.2, 0.02)
    assert not hasattr(training, "max_batch_accounts")
    assert (serving.auth_enabled, serving.keys_path, serving.max_batch_accounts,
            serving.max_body_bytes, serving.trust_forwarded_proto) == (
        False, Path("/etc/propensity/keys.json"), 50, 100_000, True)
    assert serving.model_uris == {"churn": "models:/propensity-churn/3"}
    assert (serving.reload_max_account_drop, serving.reasons_per_direction,
            serving.unknown_categories, serving.max_missing_importance) == (
        0.25, 2, "missing", 0.4)
    assert not hasattr(serving, "horizon_days")


@pytest.mark.parametrize("cls", [Settings, TrainingSettings, ServingSettings])
def test_a_key_no_package_reads_is_refused_by_name(config, cls):
    config("horizon_day = 60\nseed = 7\n")
    with pytest.raises(ValidationError) as refused:
        cls()
    assert [(e["loc"], e["type"]) for e in refused.value.errors()] == [
        (("horizon_day",), "extra_forbidden")]


def test_precedence_is_arguments_then_environment_then_file(config, tmp_path, monkeypatch):
    config("horizon_days = 60\nmax_batch_accounts = 50\nseed = 7\n")
    monkeypatch.setenv("PROPENSITY_HORIZON_DAYS", "30")
    monkeypatch.setenv("PROPENSITY_MAX_BATCH_ACCOUNTS", "20")  # not features' business
    assert TrainingSettings().horizon_days == 30
    assert TrainingSettings(horizon_days=14).horizon_days == 14
    assert ServingSettings().max_batch_accounts == 20
    assert Settings().seed == 7
    assert TrainingSettings.load(tmp_path / "cli").data_dir == tmp_path / "cli"
    assert TrainingSettings.load(None).data_dir == Path("data")


def test_each_command_reads_the_shared_file(config, tmp_path):
    """A features and a serving command with a file that also holds the other's keys."""
    from propensity_cli import app

    config('data_dir = "{data_dir}"\nhorizon_days = 60\nauth_enabled = false\n'
           f'api_keys_path = "{tmp_path / "keys.json"}"\n')
    runner = CliRunner()
    keys = runner.invoke(app, ["keys", "list"])
    assert keys.exit_code == 0, keys.output
    assert f"no API keys in {tmp_path / 'keys.json'}" in keys.output.replace("\n", "")
    described = runner.invoke(app, ["features", "describe"])
    assert described.exit_code == 0, described.output


@pytest.mark.parametrize("setting, environment, exported", [
    (None, None, False),                                  # the embedded store
    (None, "http://mlflow.internal:5000", False),         # the user's variable
    ("sqlite:////srv/mlflow.db", "http://mlflow.internal:5000", False),  # the setting first
    (None, "sqlite:////elsewhere/mlflow.db", True),       # exported by this process: not counted
])
def test_training_and_serving_resolve_one_store(config, tmp_path, monkeypatch, setting,
                                                environment, exported):
    """Serving used to take a URI this process had exported (training's) as the user's."""
    from features import tracking_store

    config("")
    monkeypatch.setattr(tracking_store, "_SET_HERE", {environment} if exported else set())
    if environment:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", environment)
    expected = setting or (None if exported else environment) or (
        f"sqlite:///{tmp_path.resolve()}/book/mlflow/mlflow.db")
    book = tmp_path / "book"
    training = TrainingSettings(data_dir=book, mlflow_tracking_uri=setting)
    serving = ServingSettings(data_dir=book, mlflow_tracking_uri=setting)
    assert training.tracking_uri == serving.tracking_uri == expected


def test_a_bad_setting_is_one_line_per_problem_not_a_traceback(config):
    from propensity_cli import app

    config('horizon_day = 60\nmax_batch_accounts = "many"\n')
    runner = CliRunner()
    for command in (["keys", "list"], ["models", "list"], ["features", "describe"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        assert "Traceback" not in result.output
    lines = runner.invoke(app, ["keys", "list"]).output.replace("\n", " ")
    assert "error: setting max_batch_accounts: Input should be a valid integer" in lines
    assert "error: setting horizon_day: no such setting (from PROPENSITY_* or " in lines
    config("horizon_days = \n")
    broken = runner.invoke(app, ["models", "list"])
    assert broken.exit_code == 2
    assert "propensity.toml: not valid TOML (Invalid value (at line 1, column 16))" in \
        broken.output.replace("\n", "")
