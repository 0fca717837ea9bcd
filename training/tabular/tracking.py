"""``propensity train tabular``: fit a prepared table, then log and register it like the rest.

Reads the table, runs :func:`training.tabular.fit.fit_tabular`, and records one MLflow run: the
inference report, every candidate's cross-validated mean and spread, the calibration report,
plots (ROC/PR of the candidates, calibration, lift/gain, importance) and the model, registered
as ``propensity-tabular-<table name>`` (or ``--name``) with the same champion/challenger gate.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from training.settings import TrainingSettings
from training.train import Progress, TrainingError


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet table, or a clear error naming the file."""
    path = Path(path)
    if not path.exists():
        raise TrainingError(f"table {path} does not exist")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, low_memory=False)
    except Exception as exc:  # noqa: BLE001 - any reader failure is bad input
        raise TrainingError(f"table {path}: cannot be read as CSV or Parquet ({exc})") from exc


def default_name(path: Path) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", Path(path).stem.lower()).strip("-") or "table"
    return f"propensity-tabular-{slug}"


def train_table(
    path: Path,
    label: str,
    settings: TrainingSettings,
    *,
    id_col: str | None = None,
    time_col: str | None = None,
    name: str | None = None,
    progress: Progress | None = None,
) -> dict:
    """Fit, log and register; returns the JSON-ready summary with run, version and alias."""
    import joblib
    import mlflow

    from training import plots
    from training.tabular.fit import fit_tabular
    from training.tracking import (
        champion_version,
        configure,
        decide,
        experiment_id,
        git_commit,
        set_alias,
    )

    frame = read_table(path)
    try:
        result = fit_tabular(frame, label, id_col=id_col, time_col=time_col, seed=settings.seed,
                             progress=progress)
    except ValueError as exc:
        raise TrainingError(f"table {Path(path).name}: {exc}") from exc
    summary = result.summary()
    name = name or default_name(path)
    uri = configure(settings.tracking_uri, settings.mlflow_dir)
    mlflow.set_experiment(experiment_id=experiment_id(name, uri, settings.mlflow_dir))
    chosen = result.candidates[result.chosen]
    new = {"roc_auc": result.calibrated_metrics["roc_auc"].mean,
           "ece": result.calibrated_metrics["ece"].mean}
    champion = champion_version(name)
    champion_metrics = None
    if champion is not None:
        logged = mlflow.get_run(champion.run_id).data.metrics
        champion_metrics = {"roc_auc": logged.get("cv_roc_auc", 0.0),
                            "ece": logged.get("cv_ece", 1.0)}
    with mlflow.start_run(run_name=f"tabular {Path(path).name}") as run:
        mlflow.set_tags({"task": "tabular", "git_commit": git_commit()})
        mlflow.log_params({"table": str(path), "label": label, "id": id_col or "",
                           "time": time_col or "", "chosen": result.chosen,
                           "evaluation": result.evaluation, "rows": summary["rows"],
                           "positives": summary["positives"], "seed": settings.seed,
                           "calibration_method": result.calibration.get("method")})
        for cand, c in result.candidates.items():
            mlflow.log_metrics({f"{cand}_{m}_mean": s.mean for m, s in c.metrics.items()
                                if np.isfinite(s.mean)})
            mlflow.log_metrics({f"{cand}_{m}_std": s.std for m, s in c.metrics.items()
                                if np.isfinite(s.std)})
        mlflow.log_metrics({f"cv_{m}": s.mean for m, s in result.calibrated_metrics.items()
                            if np.isfinite(s.mean)})
        if result.intervals is not None:
            mlflow.log_metrics(result.intervals.mlflow_metrics(
                {c: f"{c}_oof_" for c in [*result.candidates, "calibrated"]}))
        mlflow.log_dict(summary, "tabular_summary.json")
        y, seen = result.y[result.evaluated], result.evaluated
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            plots.roc_pr_curves(y, {c: r.oof[seen] for c, r in result.candidates.items()},
                                out / "roc_pr.png")
            plots.calibration_curve(y, chosen.oof[seen], result.oof[seen],
                                    out / "calibration.png")
            plots.lift_gain_chart(y, result.oof[seen], out / "lift_gain.png")
            plots.feature_importance(list(result.importances.index),
                                     list(result.importances.values),
                                     out / "feature_importance.png")
            mlflow.log_artifacts(str(out), "report")
            model_path = out / "tabular_model.joblib"
            joblib.dump(result.model, model_path)
            from training.tabular.pyfunc import TabularPyfunc

            example = frame.drop(columns=[label]).head(5)
            info = mlflow.pyfunc.log_model(
                name="model", python_model=TabularPyfunc(),
                artifacts={"model": str(model_path)},
                # the whole training package: the pickle names training.tabular.* classes
                code_paths=[str(Path(__file__).resolve().parents[1])],
                input_example=example, registered_model_name=name,
            )
        version = int(info.registered_model_version)
        decision = decide(new, champion_metrics, settings.promotion_max_ece_increase)
        set_alias(name, version, decision.alias)
        mlflow.set_tags({"alias": decision.alias, "promotion_reason": decision.reason})
    summary.update({"run_id": run.info.run_id, "registered_model": name, "version": version,
                    "alias": decision.alias, "reason": decision.reason,
                    "metrics": {m: s.mean for m, s in result.calibrated_metrics.items()}})
    return summary
