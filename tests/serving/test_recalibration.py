"""Recalibration end to end on the generated book (real MLflow, real labels): a champion whose
calibration is wrong on purpose is recalibrated into a new version with the very same trees
and a lower ECE, and the gate promotes it; recalibrating a calibrator that is already right is
not promoted; no matured labels is a clear failure that registers nothing.

Lives beside the serving tests for the shared trained book (tests/serving/conftest.py); what
it runs is the composition root's ``recalibrate_task`` and ``propensity train recalibrate``.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pytest
from typer.testing import CliRunner

from features.store import FeatureStore
from propensity_cli import app, recalibrate_task
from serving.settings import ServingSettings
from training.calibration import Calibrator
from training.recalibrate import REASON_TAG, RECALIBRATED_FROM, raw_scores

pytestmark = pytest.mark.slow
NAME = "propensity-churn"
SHIFT = {"method": "sigmoid", "a": 1.0, "b": 1.5}  # every raw score 1.5 logits too high
ECE_ONLY = "calibration: ECE 0.090 of the run of 2025-01-01 is above the test ECE 0.020 + 0.03"
runner = CliRunner()


def recalibrate_cli(data: Path, *args: str):
    return runner.invoke(app, ["train", "recalibrate", "churn", *args, "--data-dir", str(data)])


def use_store(data: Path) -> None:
    from features.tracking_store import embedded_uri
    from training.tracking import configure

    configure(embedded_uri(data / "mlflow"), data / "mlflow")


def model_files(version: int | str, folder: Path) -> Path:
    return Path(mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{NAME}/{version}", dst_path=str(folder))) / "artifacts"


def loaded(version: int | str):
    """The model of a version number, or of an alias."""
    uri = f"models:/{NAME}@{version}" if version == "champion" else f"models:/{NAME}/{version}"
    return mlflow.pyfunc.load_model(uri).unwrap_python_model()


def miscalibrate_the_champion(data: Path, work: Path) -> int:
    """Register the champion's trees with a calibrator shifted on purpose, and promote it (the
    benchmark's own way of breaking calibration)."""
    from bench.recalibration import miscalibrate

    return miscalibrate(data, SHIFT["b"], work / "source")


@pytest.fixture(scope="module")
def recalibrated(served_data, tmp_path_factory):
    """A copy of the book whose churn champion is miscalibrated, then recalibrated once by the
    daily run's hook; (data, miscalibrated version, the hook's line, work folder)."""
    work = tmp_path_factory.mktemp("recalibration")
    data = work / "book"
    shutil.copytree(served_data, data, symlinks=True)
    previous = mlflow.get_tracking_uri()
    use_store(data)
    try:
        wrong = miscalibrate_the_champion(data, work)
        line = recalibrate_task(ServingSettings(data_dir=data, auth_enabled=False), "churn",
                                [ECE_ONLY])
        use_store(data)
        yield data, wrong, line, work
    finally:
        mlflow.set_tracking_uri(previous)


def test_a_miscalibrated_champion_is_recalibrated_and_promoted(recalibrated):
    data, wrong, line, _ = recalibrated
    from training.tracking import champion_version

    new = champion_version(NAME)
    assert int(new.version) == wrong + 1
    assert line.startswith(f"churn: recalibrated (v{wrong} -> v{wrong + 1} champion; ECE ")
    assert "calibration improves" in line
    assert new.tags[RECALIBRATED_FROM] == str(wrong)
    run = mlflow.get_run(new.run_id)
    assert run.data.tags[RECALIBRATED_FROM] == str(wrong)
    assert run.data.tags[REASON_TAG] == ECE_ONLY  # the trigger's reason
    metrics = run.data.metrics
    # on the test block, the refitted calibrator is better calibrated than the shifted one
    assert metrics["test_ece"] < metrics["champion_test_ece"] / 2
    assert metrics["test_log_loss"] < metrics["champion_test_log_loss"]
    # a sigmoid with a positive slope keeps the ranking: exactly the same ROC AUC
    assert metrics["test_roc_auc"] == metrics["champion_test_roc_auc"]
    assert metrics["diff_champion_roc_auc"] == 0.0
    meta = loaded(new.version).meta
    assert meta["recalibration"]["from_version"] == wrong
    # the age trigger counts from the trees' registration, not the recalibration's
    registered = mlflow.MlflowClient().get_model_version(NAME, str(wrong)).creation_timestamp
    assert meta["recalibration"]["trees_registered_at"] == datetime.fromtimestamp(
        registered / 1000, UTC).isoformat(timespec="seconds")
    assert meta["test_metrics"]["ece"] == metrics["test_ece"]
    assert meta["window"] == loaded(wrong).meta["window"]  # the trees' training window


def test_the_recalibrated_version_has_the_same_trees_and_only_a_new_calibrator(recalibrated):
    data, wrong, _, work = recalibrated
    before, after = model_files(wrong, work / "before"), model_files(wrong + 1, work / "after")
    assert sorted(p.name for p in before.iterdir()) == sorted(p.name for p in after.iterdir())
    for name in ("booster.txt", "linear.json", "schema.json", "combination.json"):
        if (before / name).exists():
            assert (after / name).read_bytes() == (before / name).read_bytes(), name
    calibrator = json.loads((after / "calibrator.json").read_text())
    assert calibrator != SHIFT

    store = FeatureStore(data / "features")
    rows = store.read(store.dates()[-1])
    old, new = loaded(wrong), loaded(wrong + 1)
    raw = raw_scores(old, rows)
    assert np.array_equal(raw_scores(new, rows), raw)  # bit-identical raw scores
    served = mlflow.pyfunc.load_model(f"models:/{NAME}@champion").predict(rows)["probability"]
    np.testing.assert_allclose(served.to_numpy(), Calibrator.from_dict(calibrator).predict(raw),
                               rtol=1e-12)


def test_a_recalibration_that_does_not_help_stays_challenger(recalibrated):
    """Recalibrating the recalibrated champion fits the same calibrator on the same rows: no
    better calibration, so it is registered as challenger and the champion stays."""
    data, wrong, _, _ = recalibrated
    result = recalibrate_cli(data, "--json", "--reason", "by hand, twice")
    assert result.exit_code == 0, result.output
    second = json.loads(result.stdout[result.stdout.index("{"):])
    assert (second["source_version"], second["version"]) == (wrong + 1, wrong + 2)
    assert second["alias"] == "challenger" and not second["reused"]
    assert second["reason"].startswith("recalibration does not improve calibration: ECE ")
    assert second["after"]["ece"] == pytest.approx(second["before"]["ece"], abs=1e-12)
    assert second["why"] == ["by hand, twice"]
    use_store(data)
    assert loaded(wrong + 2).meta["recalibration"]["trees_registered_at"] == (
        loaded(wrong + 1).meta["recalibration"]["trees_registered_at"])  # carried forward
    from training.tracking import champion_version

    use_store(data)
    assert int(champion_version(NAME).version) == wrong + 1


def test_no_matured_labels_fails_clearly_and_registers_nothing(served_data, tmp_path):
    """The snapshots after the model's training window removed: nothing to recalibrate on."""
    data = tmp_path / "book"
    shutil.copytree(served_data, data, symlinks=True)
    listed = json.loads(runner.invoke(app, ["models", "list", "--json", "--data-dir",
                                            str(data)]).stdout)
    versions = sorted((r["name"], r["version"]) for r in listed)
    previous = mlflow.get_tracking_uri()
    use_store(data)
    try:
        test_dates = loaded("champion").meta["window"]["test"].split(",")
    finally:
        mlflow.set_tracking_uri(previous)
    for day in test_dates:
        (data / "features" / f"as_of={day}").unlink()
    result = recalibrate_cli(data)
    assert result.exit_code == 1
    assert "no matured labels to recalibrate on" in result.output
    assert "found none" in result.output
    listed = json.loads(runner.invoke(app, ["models", "list", "--json", "--data-dir",
                                            str(data)]).stdout)
    assert sorted((r["name"], r["version"]) for r in listed) == versions
