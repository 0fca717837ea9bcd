"""Choose the model by expanding-window cross-validation over the training dates, then refit.

Folds (`expanding_folds`): the training dates are cut into up to ``N_FOLDS`` consecutive
validation blocks; each fold trains on every date at least the horizon before its block's first
date (so no label window of a training row reaches into the block) and validates on the block.
The first block starts once a third of the dates can train it; later folds train on more.

Candidates, fitted in every fold on the same rows:
- ``logistic``: the logistic-regression pipeline of `training.baselines` (L2, C = 0.1 on
  standardised features: choosing C in the folds from 0.01-1 tripled the logistic fits and
  moved the demo book's out-of-fold log loss in the fourth decimal);
- ``lightgbm``: `training.models.train_booster`, early-stopped on the fold's block, in each
  of the tree settings of `training.tuning` (the setting chosen there, on the same out-of-fold
  rows and by the same rule, is the lightgbm candidate), every fit at the learning rate of the
  whole book (`training.models.book_params`: larger above 250,000 rows); the refit
  grows the median over folds of (best iteration x full training rows / fold training rows)
  trees, so the number of trees grows with the data as it did inside the folds;
- ``blend``: ``w * tree + (1 - w) * linear`` on the log-odds scale, ``w`` from 0.05 to 0.95
  chosen on the out-of-fold predictions.

The choice uses the pooled out-of-fold **log loss**: it is the score both models are fitted
on, a proper score that rewards ranking and honest probabilities, and it is a sum over rows, so
the difference between two candidates on the same rows has a standard error (clustered by
account: an account's rows move together). AUC is reported beside it. Rule: the simplest
candidate (logistic, then lightgbm, then blend) whose log loss is within one standard error of
the best's wins, so a small book or a rare event, where the extra model's edge is noise,
chooses the logistic regression by itself.

The training rows are held once (`FoldData`): one float matrix, which the logistic fits read,
and one LightGBM Dataset binned once over every training row, whose bins every fold and the
refit reuse (`Dataset.subset`). The bin edges therefore see the feature values of a fold's
validation rows (never their labels): the same unsupervised look that a scaler fitted on all
rows would take, and the bins the refit uses anyway. Per-fold bins would cost a Dataset
construction per fold and change each fold's trees by bin edges only. The refit fits the
logistic regression first (the baseline too, when the trees win alone), then frees the
matrix when it was handed over (`HandedOver`) and grows its trees on the Dataset alone.
"""

from __future__ import annotations

import gc
import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from training.baselines import LOGISTIC_C
from training.dataset import return_freed_memory
from training.estimator import KINDS, Estimator, export_linear
from training.models import NUM_BOOST_ROUND, FeatureSchema
from training.tuning import TreeSetting, candidate_settings, choose_setting

if TYPE_CHECKING:
    import lightgbm

N_FOLDS = 4
# The logistic regression's rows, at most (a seeded sample of whole accounts above it; see
# `account_sample`)
LOGISTIC_MAX_ROWS = 250_000
BLEND_WEIGHTS = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2))
_EPS = 1e-12


@dataclass(frozen=True)
class Fold:
    """Dates a fold trains on and the block it is validated on (each >= horizon after)."""

    train: list[date]
    validation: list[date]


def expanding_folds(dates: list[date], horizon_days: int, n_folds: int = N_FOLDS) -> list[Fold]:
    """Up to ``n_folds`` expanding-window folds over ``dates`` (see the module docstring).
    ``ValueError`` when no validation date has a training date the horizon before it."""
    days = sorted({pd.Timestamp(d).date() for d in dates})
    horizon = timedelta(days=horizon_days)
    least = max(1, math.ceil(len(days) / 3))
    first = next((i for i, d in enumerate(days)
                  if sum(e + horizon <= d for e in days) >= least), None)
    if first is None:
        least = 1
        first = next((i for i, d in enumerate(days) if days[0] + horizon <= d), None)
    if first is None:
        span = f"{days[0]} to {days[-1]}" if days else "none"
        raise ValueError(f"cross-validation needs two training dates at least {horizon_days} "
                         f"days (the horizon) apart; the training dates span {span}")
    rest = days[first:]
    blocks = [list(b) for b in np.array_split(np.array(rest, dtype=object),
                                              min(n_folds, len(rest)))]
    return [Fold([d for d in days if d + horizon <= b[0]], b) for b in blocks]


@dataclass
class Selection:
    """What the cross-validation found; ``as_json`` is logged and printed."""

    folds: list[dict]
    candidates: dict[str, dict]
    chosen: str
    logistic_c: float
    tree_weight: float
    fold_rounds: list[int]
    final_rounds: int
    oof: np.ndarray  # the chosen candidate's raw out-of-fold probabilities
    oof_label: np.ndarray
    oof_rows: np.ndarray = field(repr=False)  # positions in the training frame
    tree_setting: TreeSetting = field(default_factory=lambda: candidate_settings()[-1])
    tree_settings: dict[str, dict] = field(default_factory=dict)  # per setting: its OOF scores
    book_params: dict = field(default_factory=dict)  # learning rate, patience of every tree fit
    # the logistic regression refitted on the training rows: the model's linear part, or the
    # baseline when the trees alone are chosen (fitted before the matrix is released)
    logistic: object = field(default=None, repr=False)

    def as_json(self) -> dict:
        return {
            "metric": "log_loss", "rule": "simplest within one standard error of the best",
            "chosen": self.chosen, "folds": self.folds, "candidates": self.candidates,
            "logistic_c": self.logistic_c, "tree_weight": self.tree_weight,
            "rounds": {"folds": self.fold_rounds, "final": self.final_rounds},
            "lightgbm_setting": {"name": self.tree_setting.name,
                                 "params": dict(self.tree_setting.params),
                                 "book": dict(self.book_params),
                                 "candidates": self.tree_settings},
        }


def log_loss_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def paired_se(diff: np.ndarray, groups: np.ndarray) -> float:
    """Standard error of the mean of per-row differences, clustered by ``groups``."""
    n = len(diff)
    codes, _ = pd.factorize(groups)
    sums = np.bincount(codes, weights=diff)
    counts = np.bincount(codes)
    g = len(sums)
    if g < 2:
        return float("inf")
    resid = sums - counts * diff.mean()
    return float(math.sqrt(g / (g - 1) * np.sum(resid ** 2)) / n)


def choose(losses: dict[str, np.ndarray], groups: np.ndarray) -> tuple[str, dict[str, dict]]:
    """The simplest candidate within one (paired, account-clustered) standard error of the
    lowest mean log loss; per candidate its difference to the best and that error."""
    mean = {k: float(v.mean()) for k, v in losses.items()}
    best = min(mean, key=lambda k: (mean[k], KINDS.index(k)))
    report = {}
    for k in losses:
        diff = losses[k] - losses[best]
        se = 0.0 if k == best else paired_se(diff, groups)
        report[k] = {"difference_to_best": float(diff.mean()), "standard_error": se}
    chosen = next(k for k in KINDS if k in losses
                  and report[k]["difference_to_best"] <= report[k]["standard_error"])
    return chosen, report


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None


def _logistic(schema: FeatureSchema, seed: int):
    from training.baselines import logistic_baseline

    return logistic_baseline(schema, seed)


def account_sample(accounts: np.ndarray, rows: np.ndarray | None, seed: int,
                   limit: int | None = None) -> np.ndarray | None:
    """``rows`` (positions; None: every row of ``accounts``) when at most ``limit``, else the
    rows of a seeded sample of their accounts, every row of a chosen account, ~``limit`` in all.

    Why: the logistic regression has ~100 coefficients; 1.2 M rows (100,000 accounts x 17
    dates) do not estimate them better than 250,000, but its design on all of them was the
    largest array of a training run. Whole accounts, not rows: an account's dates are nearly
    copies of each other. Each account draws one number from ``seed``, and the rows kept are
    those whose account drew below ``limit / len(rows)``: the same draw in every fold, so a
    larger fold keeps a superset of a smaller one's accounts.
    """
    limit = LOGISTIC_MAX_ROWS if limit is None else limit
    codes = np.asarray(accounts)
    n = len(codes) if rows is None else len(rows)
    if n <= limit:
        return rows
    draw = np.random.default_rng(seed).random(int(codes.max()) + 1)
    picked = codes if rows is None else codes[rows]
    kept = np.flatnonzero(draw[picked] < limit / n)
    return kept if rows is None else rows[kept]


def fit_logistic_rows(x: np.ndarray, y: np.ndarray, accounts: np.ndarray, schema: FeatureSchema,
                      seed: int, rows: np.ndarray | None = None):
    """The logistic pipeline fitted on ``rows`` (None: all) of ``x``, or on the
    `account_sample` of them when they are many. ``accounts``: an account code per row."""
    rows = account_sample(accounts, rows, seed)
    xs = x if rows is None else _rows_of(x, rows)
    ys = y if rows is None else y[rows]
    return _logistic(schema, seed).fit(xs, np.asarray(ys).astype(int))


def account_codes(accounts) -> np.ndarray:
    """Each row's account as a small integer (first seen, first numbered)."""
    return pd.factorize(np.asarray(accounts))[0]


def _rows_of(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``x``'s ``rows`` (increasing positions): a view when they are consecutive (a fold's
    rows are runs of dates: the matrix is stacked by date), a copy otherwise."""
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        return x[rows[0]:rows[-1] + 1]
    return x[rows]


@dataclass
class HandedOver:
    """A training matrix handed to `select_and_refit` with its only reference, so that the
    selection can free it once nothing reads it any more: after the last logistic fit,
    before the refit's trees, which need only LightGBM's binned Dataset. (An array passed as
    an argument stays referenced by the caller until the call returns; a holder does not.)

    Why: at 100,000 accounts x 17 dates of cross-sell pairs the matrix is 0.89 GB (float32)
    and the refit of the trees, LightGBM's largest fit, ran on top of it."""

    x: np.ndarray | None


@dataclass
class FoldData:
    """Every training row once, shared by the folds and the refit: ``x`` (the
    `training.models.model_matrix`, which the logistic fits read), the labels, and ``dataset``,
    LightGBM's Dataset constructed over all rows (binned once; fits on a part of the rows take a
    subset of it). Building it is the only pass over the features LightGBM makes."""

    x: np.ndarray
    y: np.ndarray
    schema: FeatureSchema
    seed: int
    dataset: lightgbm.Dataset = field(repr=False)
    accounts: np.ndarray | None = None  # an account code per row: the logistic's sample

    @classmethod
    def build(cls, x: np.ndarray, y: np.ndarray, schema: FeatureSchema, seed: int,
              accounts=None) -> FoldData:
        from training import models

        y = np.asarray(y, dtype="float64")
        codes = None if accounts is None else account_codes(accounts)
        return cls(x, y, schema, seed, models.lightgbm_dataset(x, y, schema, seed), codes)

    def lightgbm_rows(self, rows: np.ndarray | None = None) -> lightgbm.Dataset:
        """The Dataset of ``rows`` (positions, increasing; None: every row), on the shared bins."""
        if rows is None or len(rows) == len(self.y):
            return self.dataset
        subset = self.dataset.subset(rows)
        # LightGBM keeps ``sorted(rows)``: a Python list of one numpy scalar per row (~100 MB
        # at a fold of 2 M rows, held through its fit, and millions of small objects left
        # scattered over the heap); the same positions as one int32 array instead
        subset.used_indices = np.sort(np.asarray(rows)).astype(np.int32)
        return subset

    def fit_lightgbm(self, train: np.ndarray | None, valid: np.ndarray | None = None,
                     params: dict | None = None) -> lightgbm.Booster:
        """Boost on the ``train`` rows (None: all), early-stopped on the ``valid`` rows, at
        the book's learning rate (`book_params`; ``params`` override it)."""
        from training import models

        n_train = len(self.y) if train is None else len(train)
        dvalid = None if valid is None else self.lightgbm_rows(valid)
        return models.train_booster(self.lightgbm_rows(train), n_train, dvalid, self.seed,
                                    {**self.book_params, **(params or {})})

    @property
    def book_params(self) -> dict:
        """The learning rate and patience of every tree fit here, folds and refit alike: those
        of a book of all these rows (`training.models.book_params`; ``{}``: the defaults)."""
        from training import models

        return models.book_params(len(self.y))

    def matrix_rows(self, rows: np.ndarray | None = None) -> np.ndarray:
        """``x``'s ``rows`` (increasing positions; None: all). The rows are stacked by date,
        so a fold's training rows and its block are runs of consecutive rows: a view then,
        not a copy."""
        return self.x if rows is None else _rows_of(self.x, rows)

    def logistic_rows(self, rows: np.ndarray | None = None) -> np.ndarray | None:
        """The rows a logistic fit on ``rows`` (None: all) reads: those, or the
        `account_sample` of them when they are more than ``LOGISTIC_MAX_ROWS``."""
        return rows if self.accounts is None else account_sample(self.accounts, rows,
                                                                 self.seed)

    def release_matrix(self) -> None:
        """Drop the matrix (the caller holds no other reference: `HandedOver`); the Dataset
        stays, so tree fits go on, logistic fits and predictions no longer can."""
        self.x = None
        release_memory()

    def fit_logistic(self, rows: np.ndarray | None = None):
        """The logistic pipeline fitted on ``rows`` (None: all) of the shared matrix, or on a
        sample of their accounts when they are more than ``LOGISTIC_MAX_ROWS``."""
        if self.x is None:
            raise ValueError("the training matrix was released: no logistic fit after it")
        if self.accounts is None:
            y = self.y if rows is None else self.y[rows]
            return _logistic(self.schema, self.seed).fit(self.matrix_rows(rows), y.astype(int))
        return fit_logistic_rows(self.x, self.y, self.accounts, self.schema, self.seed, rows)


def select_and_refit(
    frame: pd.DataFrame | np.ndarray | HandedOver, y: np.ndarray, as_of: pd.Series,
    accounts: pd.Series, schema: FeatureSchema, horizon_days: int, seed: int,
    say=lambda _m: None,
) -> tuple[Estimator, Selection]:
    """Cross-validate the candidates on every training row (``frame``: a model frame or its
    `training.models.model_matrix`, as it is or `HandedOver`), choose, and refit the winner
    on all of it. ``as_of`` and ``accounts`` per row. The logistic regression is refitted
    whichever candidate wins (``Selection.logistic``: the baseline when the trees win), before
    the trees: a matrix made here from a frame, or handed over, is freed before the refit's
    trees (``HandedOver.x`` is None after); a matrix passed as it is, the caller's, is kept."""
    from threadpoolctl import threadpool_limits

    from training import models

    with threadpool_limits(limits=1, user_api="blas"):  # small BLAS calls: one thread is faster
        owned = not isinstance(frame, np.ndarray)
        if isinstance(frame, HandedOver):
            x, frame.x = frame.x, None
        else:
            x = frame if isinstance(frame, np.ndarray) else models.model_matrix(frame, schema)
        data = FoldData.build(x, y, schema, seed, accounts)
        del x  # held by ``data`` alone now
        y = data.y
        # each row's day as a number, not a date object per row (~110 MB at 2.7 M rows)
        row_days = _days_of(as_of)
        folds = expanding_folds([d.date() for d in pd.to_datetime(np.unique(row_days))],
                                horizon_days)
        settings = candidate_settings()
        oof = {k: np.full(len(y), np.nan) for k in ("lightgbm", "logistic")}
        tree_oof = {s.name: np.full(len(y), np.nan) for s in settings}
        tree_rounds: dict[str, list[int]] = {s.name: [] for s in settings}
        fold_rows, fold_info = [], []
        for i, fold in enumerate(folds, 1):
            say(f"cross-validation fold {i} of {len(folds)}")
            tr = np.flatnonzero(np.isin(row_days, _days_of(fold.train)))
            va = np.flatnonzero(np.isin(row_days, _days_of(fold.validation)))
            fold_rows.append(va)
            fold_info.append({"train_from": str(fold.train[0]), "train_to": str(fold.train[-1]),
                              "validation": [str(d) for d in fold.validation],
                              "rows_train": int(len(tr)), "rows_validation": int(len(va)),
                              "positives_validation": int(y[va].sum())})
            if len(va) == 0 or y[tr].min() == y[tr].max():
                raise ValueError(f"cross-validation fold {i}: its training rows hold a single "
                                 "class or it has no validation rows")
            x_va = data.matrix_rows(va)
            for s in settings:
                booster = data.fit_lightgbm(tr, va, params=s.params)
                tree_oof[s.name][va] = booster.predict(x_va)
                tree_rounds[s.name].append(
                    max(1, round(booster.best_iteration * len(y) / len(tr))))
                del booster
                release_memory()  # the fit's subsets and LightGBM's buffers, before the next
            oof["logistic"][va] = data.fit_logistic(tr).predict_proba(x_va)[:, 1]
            del x_va
            release_memory()
        rows = np.concatenate(fold_rows)
        yo, groups = y[rows], np.asarray(accounts)[rows]
        setting, tree_report = choose_setting(
            {k: log_loss_rows(yo, v[rows]) for k, v in tree_oof.items()}, groups, settings)
        for k, v in tree_report.items():
            v["rounds"] = tree_rounds[k]
        oof["lightgbm"] = tree_oof[setting.name]
        fold_rounds = tree_rounds[setting.name]
        p = {k: v[rows] for k, v in oof.items()}
        z_tree, z_lin = _logit(p["lightgbm"]), _logit(p["logistic"])
        weight = min(BLEND_WEIGHTS, key=lambda w: log_loss_rows(
            yo, _sigmoid(w * z_tree + (1 - w) * z_lin)).mean())
        p["blend"] = _sigmoid(weight * z_tree + (1 - weight) * z_lin)
        losses = {k: log_loss_rows(yo, v) for k, v in p.items()}
        chosen, report = choose(losses, groups)
        bounds = np.cumsum([0] + [len(r) for r in fold_rows])
        candidates = {
            k: {"log_loss": float(losses[k].mean()), "roc_auc": _auc(yo, p[k]),
                "folds": {"log_loss": [float(losses[k][a:b].mean())
                                       for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
                          "roc_auc": [_auc(yo[a:b], p[k][a:b])
                                      for a, b in zip(bounds[:-1], bounds[1:], strict=True)]},
                **report[k]}
            for k in KINDS
        }
        candidates["blend"]["tree_weight"] = float(weight)
        final_rounds = int(min(NUM_BOOST_ROUND, np.median(fold_rounds)))
        chosen_oof = p[chosen]
        # the out-of-fold scores of every candidate and setting are ~0.2 GB at 2.7 M rows:
        # freed before the refit, which otherwise ran on top of them
        del tree_oof, oof, p, losses
        z_tree = z_lin = None  # (the blend weight's search closes over them)
        say(f"refitting {chosen} on all {len(y):,} training rows")
        # the baseline's logistic fit when the trees win alone, now: it needs the matrix,
        # which the refit releases before its trees when it may
        baseline = data.fit_logistic() if chosen == "lightgbm" else None
        estimator = refit(chosen, data, float(weight), final_rounds, setting.params,
                          release=data.release_matrix if owned else None)
    selection = Selection(fold_info, candidates, chosen, LOGISTIC_C,
                          estimator.tree_weight, fold_rounds, final_rounds, chosen_oof, yo, rows,
                          setting, tree_report, data.book_params,
                          estimator.linear if baseline is None else baseline)
    return estimator, selection


def release_memory() -> None:
    """Collect what a fit left (its Dataset subsets, boosters) and hand the freed heap pages
    back to the system (`training.dataset.return_freed_memory`).

    Why: glibc keeps the pages a fit freed in its arenas, scattered between live blocks, and
    the next fit's buffers (LightGBM's, the logistic design) are not always placed in them:
    at 100,000 accounts x 17 dates of cross-sell pairs the memory held between fold fits
    crept up by ~0.2 GB over the 12 fits."""
    gc.collect()
    return_freed_memory()


def _days_of(dates) -> np.ndarray:
    """Dates (or timestamps at midnight) as numpy days."""
    return pd.to_datetime(pd.Series(dates)).to_numpy().astype("datetime64[D]")


def refit(kind: str, data: FoldData, weight: float, rounds: int,
          tree_params: dict | None = None, release=None) -> Estimator:
    """The ``kind`` candidate fitted on every row of ``data`` (the trees with the chosen
    setting's ``tree_params``): the logistic regression first, then ``release()`` (when
    given: nothing reads the matrix after it), then the trees, which read the binned Dataset
    only. The two fits are independent: the order changes no model."""
    booster = linear = export = None
    if kind in ("logistic", "blend"):
        linear = data.fit_logistic()
        # its terms' centres over the rows it was fitted on (the account sample of a large
        # book): the design of every row was 1.66 GB at 1.2 M rows, the process's peak
        export = export_linear(linear, data.schema, data.matrix_rows(data.logistic_rows()))
    if release is not None:
        release()
    if kind in ("lightgbm", "blend"):
        booster = data.fit_lightgbm(None, params={**(tree_params or {}),
                                                  "num_boost_round": rounds})
    w = {"lightgbm": 1.0, "logistic": 0.0}.get(kind, weight)
    return Estimator(kind, data.schema, booster, linear, export, w)
