"""Bring your own table: train a calibrated propensity model on any prepared per-account table.

``fit_tabular(df, label, id_col, time_col)`` infers the column types (`training.tabular.columns`),
prepares the model frame (`training.tabular.prepare`), evaluates three candidates
(`training.tabular.models`: logistic regression, LightGBM, their blend), picks one, calibrates
it and refits it on all rows. Nothing is tuned per table.

Rows with a blank label are left out (the inference report says how many).

Evaluation:
- without a time column: stratified 5-fold cross-validation, shuffled with the seed; when the
  id column repeats, stratified *group* folds keep each id's rows in one fold. Each metric is
  reported as the mean and (population) standard deviation over the folds;
- with a time column: one time-based split. The boundary is the distinct time value that puts
  the share of rows strictly before it closest to 70 % (earlier value on a tie); the model
  trains on those rows and is tested on the rest. The standard deviation is NaN (one split).

Choice: the candidate with the best mean ROC AUC, except that a simpler candidate (logistic,
then lightgbm, then blend) within ``AUC_TIE`` of the best wins. Calibration: sigmoid or
isotonic, chosen by `training.calibration.fit_calibrator` on the chosen candidate's
out-of-fold (or test-slice) probabilities; the calibrated out-of-fold probabilities reported
are cross-fitted (each fold calibrated by a map fitted on the other folds), so their metrics
are honest. The final model is refitted on all labelled rows; LightGBM then grows the mean
number of trees its folds grew.

Uncertainty: every candidate's pooled out-of-fold probabilities get 95 % bootstrap intervals
(`training.uncertainty`, resampling ids when the id column is given, rows otherwise), and the
chosen candidate is paired with each other one on the same resamples; the comparison that
matters is with the logistic-regression baseline (`versus_baseline`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from training.calibration import Calibrator, fit_calibrator
from training.metrics import evaluate
from training.tabular.columns import ColumnInference, infer_columns, time_values
from training.tabular.models import CANDIDATES, Model, fit_candidate, fit_lightgbm, fit_logistic
from training.tabular.prepare import Preparation, prepare
from training.uncertainty import Uncertainty, bootstrap

__all__ = ["ColumnInference", "MetricSummary", "CandidateResult", "TabularModel",
           "TabularResult", "fit_tabular", "infer_columns", "prepare", "time_split"]

N_FOLDS = 5
TRAIN_SHARE = 0.7
AUC_TIE = 0.001
BASELINE = "logistic"  # the candidate that is training.baselines' logistic regression
NOT_METRICS = frozenset({"n", "positive_rate"})
Progress = Callable[[str], None]


@dataclass(frozen=True)
class MetricSummary:
    mean: float
    std: float
    folds: tuple[float, ...]


@dataclass
class CandidateResult:
    name: str
    metrics: dict[str, MetricSummary]
    oof: np.ndarray  # raw probabilities; NaN for rows never in a test fold
    seconds: float


@dataclass
class TabularModel:
    """The final model: raw table in, calibrated probability of the positive class out."""

    name: str
    preparation: Preparation
    estimator: Model
    calibrator: Calibrator

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Calibrated P(label = positive), shape (n,), for a raw frame shaped like the training
        table (the label, id and time columns may be absent)."""
        X = self.preparation.transform(df)
        return self.calibrator.predict(self.estimator.predict(X))


@dataclass
class TabularResult:
    inferences: list[ColumnInference]
    evaluation: str
    chosen: str
    candidates: dict[str, CandidateResult]
    y: np.ndarray  # 0/1 for the labelled rows, in table order
    evaluated: np.ndarray  # bool: the rows that have out-of-fold probabilities
    oof: np.ndarray  # chosen model, calibrated (cross-fitted); NaN where not evaluated
    calibrated_metrics: dict[str, MetricSummary]  # of `oof`, per fold like the candidates
    calibration: dict[str, Any]  # fit_calibrator's report
    model: TabularModel
    importances: pd.Series  # share per model column, largest first
    seconds: float
    rounds: list[int] = field(default_factory=list)  # LightGBM trees per fold
    intervals: Uncertainty | None = None  # pooled out-of-fold, see `oof_intervals`

    @property
    def metrics(self) -> dict[str, float]:
        """The chosen candidate's mean metrics over the folds (uncalibrated)."""
        return {k: v.mean for k, v in self.candidates[self.chosen].metrics.items()}

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the inference report, every candidate's mean and std, the choice."""
        def num(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        return {
            "chosen": self.chosen,
            "evaluation": self.evaluation,
            "rows": int(len(self.y)),
            "positives": int(self.y.sum()),
            "seconds": round(self.seconds, 2),
            "columns": [{"name": str(i.name), "kind": i.kind, "detail": i.detail}
                        for i in self.inferences],
            "candidates": {
                name: {"seconds": round(c.seconds, 2),
                       **{m: {"mean": num(s.mean), "std": num(s.std)}
                          for m, s in c.metrics.items()}}
                for name, c in self.candidates.items()
            },
            "calibrated_metrics": {m: {"mean": num(s.mean), "std": num(s.std)}
                                   for m, s in self.calibrated_metrics.items()},
            "calibration": self.calibration,
            "importances": {str(k): float(v) for k, v in self.importances.items()},
            **({"intervals": self.intervals.as_json(),
                "versus_baseline": versus_baseline(self.chosen, self.intervals)}
               if self.intervals is not None else {}),
        }


def fit_tabular(
    df: pd.DataFrame,
    label: str,
    id_col: str | None = None,
    time_col: str | None = None,
    seed: int = 42,
    *,
    add_sums: bool = True,
    n_jobs: int = 1,
    progress: Progress | None = None,
) -> TabularResult:
    """Infer, evaluate the candidates, choose, calibrate and refit (see the module docstring).

    ``add_sums`` switches the row-wise sums of same-suffix columns (`training.tabular.prepare`);
    ``n_jobs`` is LightGBM's and BLAS's thread count; ``progress`` gets one-line messages.
    Raises ValueError, naming the column or the table, when the table is empty, a named column
    is missing, the label does not have exactly two classes (or too few rows of one), or no
    usable feature column is left.
    """
    import lightgbm  # noqa: F401  (loaded first: the limit below binds loaded libraries only)
    import sklearn.linear_model  # noqa: F401
    from threadpoolctl import threadpool_limits

    # Small BLAS calls (scipy's L-BFGS in the logistic fits) run several times slower with two
    # OpenBLAS threads than with one, and far slower on a busy machine; LightGBM has its own
    # n_jobs. So BLAS gets n_jobs threads too.
    with threadpool_limits(limits=n_jobs, user_api="blas"):
        return _fit_tabular(df, label, id_col, time_col, seed, add_sums, n_jobs, progress)


def _fit_tabular(
    df: pd.DataFrame, label: str, id_col: str | None, time_col: str | None, seed: int,
    add_sums: bool, n_jobs: int, progress: Progress | None,
) -> TabularResult:
    started = time.perf_counter()
    say = progress or (lambda _msg: None)
    inferences = infer_columns(df, label, id_col, time_col)
    prep = Preparation.fit(df, inferences, add_sums=add_sums)
    if not prep.schema.columns:
        raise ValueError("no usable feature columns: " + "; ".join(
            f"{i.name!r} is {i.kind}" for i in inferences if i.kind != "label"))
    y_all = prep.labels(df)
    table = df.loc[~np.isnan(y_all)].reset_index(drop=True)
    y = y_all[~np.isnan(y_all)].astype(np.int64)
    X = prep.transform(table)
    splits, evaluation = _splits(table, y, label, id_col, time_col, seed)
    say(evaluation)

    candidates, rounds = _evaluate_candidates(X, y, prep, splits, seed, n_jobs, say)
    chosen = choose(candidates)
    evaluated = ~np.isnan(candidates[chosen].oof)
    p_raw, y_eval = candidates[chosen].oof[evaluated], y[evaluated]
    calibrator, report = fit_calibrator(p_raw, y_eval, method="auto", seed=seed)
    oof, calibrated = _calibrated_oof(candidates[chosen].oof, y, splits, report["method"], seed)

    groups = table[id_col].to_numpy() if id_col is not None else None
    spread = oof_intervals(y, candidates, chosen, oof, evaluated, groups, seed)
    say(f"refitting {chosen} on all {len(y)} rows")
    final_rounds = max(1, int(round(float(np.mean(rounds))))) if rounds else None
    estimator = fit_candidate(chosen, X, y, prep.schema, seed, n_jobs, final_rounds)
    return TabularResult(
        inferences=inferences, evaluation=evaluation, chosen=chosen, candidates=candidates,
        y=y, evaluated=evaluated, oof=oof, calibrated_metrics=calibrated,
        calibration=report, model=TabularModel(chosen, prep, estimator, calibrator),
        importances=estimator.importance(), seconds=time.perf_counter() - started,
        rounds=rounds, intervals=spread,
    )


def oof_intervals(
    y: np.ndarray, candidates: dict[str, CandidateResult], chosen: str, calibrated: np.ndarray,
    evaluated: np.ndarray, groups: np.ndarray | None, seed: int,
) -> Uncertainty:
    """95 % bootstrap intervals of every candidate's pooled out-of-fold probabilities (and the
    chosen one's calibrated ones, ``calibrated``), resampling ids (rows without an id column),
    and the paired differences chosen - each other candidate on the same resamples.

    Pooled over the folds, these points differ a little from the mean over folds reported
    beside them (one ROC AUC of all rows against the mean of five)."""
    scores = {name: c.oof[evaluated] for name, c in candidates.items()}
    scores["calibrated"] = calibrated[evaluated]
    return bootstrap(y[evaluated], scores, None if groups is None else groups[evaluated],
                     pairs=[(chosen, name) for name in candidates if name != chosen], seed=seed,
                     unit="rows" if groups is None else "ids")


def versus_baseline(chosen: str, intervals: Uncertainty) -> dict[str, Any]:
    """The chosen candidate against the logistic-regression baseline, paired: the ROC AUC
    difference with its interval, and a one-line verdict."""
    if chosen == BASELINE:
        return {"baseline": BASELINE, "roc_auc": None,
                "verdict": f"the chosen model is the {BASELINE} baseline itself"}
    d = intervals.differences[f"{chosen} - {BASELINE}"]["roc_auc"]
    if d.lo > 0:
        verdict = f"{chosen} beats the {BASELINE} baseline by {d.text(signed=True)} ROC AUC"
    elif d.hi < 0:
        verdict = f"{chosen} loses to the {BASELINE} baseline by {d.text(signed=True)} ROC AUC"
    else:
        verdict = (f"{chosen} is not distinguishable from the {BASELINE} baseline: "
                   f"{d.text(signed=True)} ROC AUC")
    return {"baseline": BASELINE, "roc_auc": d.as_dict(), "verdict": verdict}


def choose(candidates: dict[str, CandidateResult], tie: float = AUC_TIE) -> str:
    """Best mean ROC AUC; the simplest candidate within ``tie`` of the best wins."""
    auc = {name: c.metrics["roc_auc"].mean for name, c in candidates.items()}
    best = max(auc.values())
    return next(name for name in CANDIDATES if name in auc and auc[name] >= best - tie)


def time_split(times: pd.Series, share: float = TRAIN_SHARE) -> tuple[np.ndarray, Any]:
    """(train mask, boundary): train rows are strictly before the boundary, a distinct time
    value chosen so the train share is closest to ``share`` (the earlier one on a tie)."""
    values = np.sort(times.unique())
    if len(values) < 2:
        raise ValueError(f"time column {times.name!r} has a single value; a time-based split "
                         "needs at least two")
    ordered = np.sort(times.to_numpy())
    before = np.searchsorted(ordered, values[1:], side="left") / len(ordered)
    k = int(np.argmin(np.abs(before - share)))
    boundary = values[k + 1]
    return (times < boundary).to_numpy(), boundary


def _splits(
    table: pd.DataFrame, y: np.ndarray, label: str, id_col: str | None, time_col: str | None,
    seed: int,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    if time_col is not None:
        times = time_values(table[time_col])
        train, boundary = time_split(times)
        _check_classes(label, y[train], "the training part of the time split", 2)
        _check_classes(label, y[~train], "the test part of the time split", 2)
        shown = boundary.date().isoformat() if hasattr(boundary, "date") else f"{boundary:g}"
        text = (f"time split on {time_col!r}: train on the {int(train.sum())} rows before "
                f"{shown}, test on the {int((~train).sum())} rows from {shown} on")
        return [(np.flatnonzero(train), np.flatnonzero(~train))], text
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    _check_classes(label, y, "the table", N_FOLDS)
    rows = np.zeros((len(y), 1))
    if id_col is not None and table[id_col].duplicated().any():
        folds = StratifiedGroupKFold(N_FOLDS, shuffle=True, random_state=seed)
        groups = pd.factorize(table[id_col])[0]
        text = f"stratified {N_FOLDS}-fold cross-validation grouped by {id_col!r}"
        return list(folds.split(rows, y, groups)), text
    folds = StratifiedKFold(N_FOLDS, shuffle=True, random_state=seed)
    return list(folds.split(rows, y)), f"stratified {N_FOLDS}-fold cross-validation"


def _check_classes(label: str, y: np.ndarray, where: str, need: int) -> None:
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if min(n_pos, n_neg) < need:
        raise ValueError(f"label column {label!r}: {where} has {n_pos} positive and {n_neg} "
                         f"negative rows; it needs at least {need} of each")


def _evaluate_candidates(
    X: pd.DataFrame, y: np.ndarray, prep: Preparation, splits: list, seed: int, n_jobs: int,
    say: Progress,
) -> tuple[dict[str, CandidateResult], list[int]]:
    oof = {name: np.full(len(y), np.nan) for name in CANDIDATES}
    scores: dict[str, list[dict[str, float]]] = {name: [] for name in CANDIDATES}
    seconds = dict.fromkeys(("lightgbm", "logistic"), 0.0)
    rounds = []
    for i, (train, test) in enumerate(splits, start=1):
        say(f"fold {i} of {len(splits)}")
        X_tr, y_tr, X_te = X.iloc[train], y[train], X.iloc[test]
        t0 = time.perf_counter()
        trees = fit_lightgbm(X_tr, y_tr, seed, n_jobs)
        t1 = time.perf_counter()
        linear = fit_logistic(X_tr, y_tr, prep.schema, seed)
        t2 = time.perf_counter()
        seconds["lightgbm"] += t1 - t0
        seconds["logistic"] += t2 - t1
        rounds.append(trees.rounds)
        p = {"lightgbm": trees.predict(X_te), "logistic": linear.predict(X_te)}
        p["blend"] = (p["lightgbm"] + p["logistic"]) / 2
        for name in CANDIDATES:
            oof[name][test] = p[name]
            scores[name].append(_metrics(y[test], p[name]))
    seconds["blend"] = seconds["lightgbm"] + seconds["logistic"]
    results = {name: CandidateResult(name, _summarise(scores[name]), oof[name], seconds[name])
               for name in CANDIDATES}
    return results, rounds


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {k: float(v) for k, v in evaluate(y, p).items() if k not in NOT_METRICS}


def _summarise(folds: list[dict[str, float]]) -> dict[str, MetricSummary]:
    out = {}
    for key in folds[0]:
        values = np.array([f[key] for f in folds])
        std = float(values.std()) if len(values) > 1 else float("nan")
        out[key] = MetricSummary(float(values.mean()), std, tuple(float(v) for v in values))
    return out


def _calibrated_oof(
    p: np.ndarray, y: np.ndarray, splits: list, method: str, seed: int
) -> tuple[np.ndarray, dict[str, MetricSummary]]:
    """Honest calibrated out-of-fold probabilities and their metrics.

    Cross-validation: each fold's probabilities go through a ``method`` calibrator fitted on
    the other folds' out-of-fold probabilities; metrics per fold. Time split: the test slice is
    cross-fitted the same way over stratified folds of itself; metrics on the whole slice.
    """
    from sklearn.model_selection import StratifiedKFold

    out = np.full(len(y), np.nan)
    if len(splits) > 1:
        scores = []
        for train, test in splits:
            calibrator = fit_calibrator(p[train], y[train], method=method, seed=seed)[0]
            out[test] = calibrator.predict(p[test])
            scores.append(_metrics(y[test], out[test]))
        return out, _summarise(scores)
    test = splits[0][1]
    p_test, y_test = p[test], y[test]
    n_splits = int(min(N_FOLDS, min(y_test.sum(), len(y_test) - y_test.sum()) // 2))
    if n_splits < 2:  # too few rows of a class to cross-fit: in-sample, and optimistic
        out[test] = fit_calibrator(p_test, y_test, method=method, seed=seed)[0].predict(p_test)
    else:
        folds = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
        for fit_rows, apply_rows in folds.split(p_test.reshape(-1, 1), y_test):
            calibrator = fit_calibrator(p_test[fit_rows], y_test[fit_rows], method=method,
                                        seed=seed)[0]
            out[test[apply_rows]] = calibrator.predict(p_test[apply_rows])
    return out, _summarise([_metrics(y_test, out[test])])
