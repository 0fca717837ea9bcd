"""Benchmark: recalibration alone against a full retrain, in time and in what it repairs.

Per repeat, on a fresh registry: ``propensity train churn`` (timed), the champion's calibrator
replaced on purpose by a sigmoid that puts every raw score ``--shift`` logits too high, then
``propensity train recalibrate churn`` (timed). Each command runs in a subprocess; its CPU
seconds (user + system, from ``getrusage``) are quoted beside wall seconds, since the machine
is shared. Makes a data directory (generate + build) when none is given.

    python -m bench.recalibration [--data-dir DIR | --accounts 2000 --months 24] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.training import prepare

NAME = "propensity-churn"


def _propensity(*args: str) -> list[str]:
    return [sys.executable, "-c", "from propensity_cli import app; app()", *args]


def _timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds of the child, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def _json(out: str) -> dict:
    return json.loads(out[out.index("{"):])


def miscalibrate(data: Path, shift: float, work: Path) -> int:
    """Register the churn champion's files with a shifted calibrator and promote it."""
    import mlflow

    from features.store import FeatureStore
    from features.tracking_store import embedded_uri
    from training.model_logging import log_artifacts_model
    from training.models import FeatureSchema
    from training.tracking import champion_version, configure, promote

    configure(embedded_uri(data / "mlflow"), data / "mlflow")
    source = champion_version(NAME)
    files = Path(mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{NAME}/{source.version}", dst_path=str(work))) / "artifacts"
    (files / "calibrator.json").write_text(
        json.dumps({"method": "sigmoid", "a": 1.0, "b": shift}), encoding="utf-8")
    schema = FeatureSchema.from_dict(json.loads((files / "schema.json").read_text()))
    store = FeatureStore(data / "features")
    mlflow.set_experiment(NAME)
    with mlflow.start_run(run_name="miscalibrated on purpose"):
        info = log_artifacts_model({p.stem: str(p) for p in files.iterdir()}, schema,
                                   store.read(store.dates()[-1]).head(5),
                                   registered_model_name=NAME)
    promote(NAME, info.registered_model_version)
    return int(info.registered_model_version)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--accounts", type=int, default=2_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shift", type=float, default=1.5)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="propensity-bench-recal-"))
    try:
        data = args.data_dir or prepare(args.accounts, args.months, root)
        times: dict[str, list[tuple[float, float]]] = {"train": [], "recalibrate": []}
        result = {}
        for i in range(args.repeats):
            shutil.rmtree(data / "mlflow", ignore_errors=True)  # a fresh registry per repeat
            wall, cpu, _ = _timed(_propensity("train", "churn", "--json", "--data-dir",
                                              str(data)))
            times["train"].append((wall, cpu))
            # in a child too: MLflow keeps the registry it opened, and each repeat makes anew
            subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                            "from bench.recalibration import miscalibrate; miscalibrate("
                            "Path(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3]))",
                            str(data), str(args.shift), str(root / f"source-{i}")],
                           check=True, capture_output=True)
            wall, cpu, out = _timed(_propensity("train", "recalibrate", "churn", "--json",
                                                "--data-dir", str(data)))
            times["recalibrate"].append((wall, cpu))
            result = _json(out)
        print(f"\ncalibration block {', '.join(result['calibration_dates'])} "
              f"({result['rows']['calibration']:,} rows, {result['positives']['calibration']} "
              f"positive), test block {', '.join(result['test_dates'])} "
              f"({result['rows']['test']:,} rows, {result['positives']['test']} positive), "
              f"method {result['calibration']['method']}, -> {result['alias']}")
        print(f"{'':<26} {'ROC AUC':>8} {'ECE':>7} {'log loss':>9} {'Brier':>7}")
        for label, m in ((f"shifted +{args.shift} logits", result["before"]),
                         ("recalibrated", result["after"])):
            print(f"{label:<26} {m['roc_auc']:>8.4f} {m['ece']:>7.4f} {m['log_loss']:>9.4f} "
                  f"{m['brier']:>7.4f}")
        print(f"\nmedian of {args.repeats}: {'wall s':>7} {'CPU s':>7}")
        medians = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
                   for k, v in times.items()}
        for command, (wall, cpu) in medians.items():
            print(f"{command:<16} {wall:>7.1f} {cpu:>7.1f}")
        print(f"retrain / recalibrate CPU: "
              f"{medians['train'][1] / medians['recalibrate'][1]:.1f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
