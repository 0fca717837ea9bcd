"""Evaluation metrics for a propensity score: ranking, probability quality, targeting value.

scikit-learn computes what it has (ROC AUC, average precision, log loss, Brier); this module
adds what it lacks: expected calibration error, lift / recall in the top k %, and the
revenue-weighted capture of the top decile.

Two conventions hold throughout, so that every number is reproducible and independent of row
order:

- **Top k %** is the ``ceil(k * n / 100)`` highest-scored rows (at least one).
- **Ties at the cut-off share it.** When the rows with the cut-off score do not all fit in the
  top k %, each of them counts in proportion to the places left: if 2 of 4 tied rows fit, each
  tied row contributes half of its positive (or value). This is the expected result under a
  uniformly random tie break, computed exactly; a constant score therefore has a lift of
  exactly 1, whatever the row order. (A rule-based score with many ties is not flattered or
  penalised by where its rows happen to sit.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

TOP_PERCENTS = (5, 10, 20)
VALUE_CAPTURE_PERCENT = 10
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece"})
COMPARE_KEYS = ("roc_auc", "pr_auc", "brier", "ece", "lift_at_10")


def evaluate(
    y_true: np.ndarray,
    p: np.ndarray,
    value: np.ndarray | None = None,
    exposure: np.ndarray | None = None,
    n_bins: int = 10,
) -> dict[str, float]:
    """All metrics of predicted probabilities ``p`` against 0/1 outcomes ``y_true``.

    ``value`` is the realised value of each row (churned ARR, expansion ARR), counted only for
    positives; when given, ``value_capture_at_10`` is the share of the positives' total value
    found in the top 10 % ranked by expected value ``p * exposure``. ``exposure`` is what is at
    stake when the score is made (e.g. ARR at as_of); without it the ranking is by ``p`` alone.
    The realised value never enters the ranking, which would leak the outcome.

    ``ece`` uses ``n_bins`` equal-width bins (see :func:`expected_calibration_error`).
    Raises ValueError when ``y_true`` holds a single class: ROC AUC is then undefined.
    """
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        log_loss,
        roc_auc_score,
    )

    y, p = _check_scores(y_true, p)
    _require_both_classes(y)
    out: dict[str, float] = {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p, n_bins=n_bins),
    }
    for k in TOP_PERCENTS:
        out[f"lift_at_{k}"] = lift_at(y, p, k)
    for k in TOP_PERCENTS:
        out[f"recall_at_{k}"] = recall_at(y, p, k)
    out["positive_rate"] = float(y.mean())
    out["n"] = int(len(y))
    if value is not None:
        key = f"value_capture_at_{VALUE_CAPTURE_PERCENT}"
        out[key] = value_capture_at(y, p, value, exposure, VALUE_CAPTURE_PERCENT)
    elif exposure is not None:
        raise ValueError("exposure ranks rows for value capture; give value too")
    return out


def expected_calibration_error(
    y_true: np.ndarray, p: np.ndarray, n_bins: int = 10, strategy: str = "uniform"
) -> float:
    """Expected calibration error: ``sum_b (n_b / n) * |mean(y_b) - mean(p_b)|``.

    ``strategy="uniform"`` (the default, used by :func:`evaluate`): ``n_bins`` equal-width bins
    on [0, 1]; a probability goes to bin ``min(floor(p * n_bins), n_bins - 1)``, so bins are
    ``[i/n_bins, (i+1)/n_bins)`` and 1.0 joins the last one. Empty bins weigh nothing.
    ``strategy="quantile"``: rows sorted by ``p`` (stable) cut into ``n_bins`` groups of
    (nearly) equal size, useful when probabilities crowd into one corner.
    """
    y, p = _check_scores(y_true, p)
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    if strategy == "uniform":
        bins = np.minimum(np.floor(p * n_bins).astype(np.int64), n_bins - 1)
    elif strategy == "quantile":
        bins = np.empty(len(p), dtype=np.int64)
        for i, rows in enumerate(np.array_split(np.argsort(p, kind="stable"), n_bins)):
            bins[rows] = i
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    sum_y = np.bincount(bins, weights=y, minlength=n_bins)
    sum_p = np.bincount(bins, weights=p, minlength=n_bins)
    # |mean(y_b) - mean(p_b)| * n_b / n == |sum_y_b - sum_p_b| / n
    return float(np.abs(sum_y - sum_p).sum() / len(y))


def top_share(scores: np.ndarray, weights: np.ndarray, percent: float) -> float:
    """Share of the total ``weights`` held by the top ``percent`` % of rows by ``scores``.

    Ties at the cut-off share it (see the module docstring). With 0/1 weights this is recall.
    """
    scores = np.asarray(scores, dtype=float)
    weights = np.asarray(weights, dtype=float)
    total = weights.sum()
    if total <= 0:
        raise ValueError("weights sum to zero: the share in the top rows is undefined")
    return _top_weight(scores, weights, _top_count(len(scores), percent)) / float(total)


def recall_at(y_true: np.ndarray, p: np.ndarray, percent: float) -> float:
    """Share of all positives found in the top ``percent`` % by score."""
    y, p = _check_scores(y_true, p)
    _require_positive(y)
    return top_share(p, y, percent)


def lift_at(y_true: np.ndarray, p: np.ndarray, percent: float) -> float:
    """Positive rate in the top ``percent`` % divided by the overall positive rate."""
    y, p = _check_scores(y_true, p)
    _require_positive(y)
    k = _top_count(len(y), percent)
    return float(_top_weight(p, y, k) / k / y.mean())


def value_capture_at(
    y_true: np.ndarray,
    p: np.ndarray,
    value: np.ndarray,
    exposure: np.ndarray | None = None,
    percent: float = VALUE_CAPTURE_PERCENT,
) -> float:
    """Share of the positives' total ``value`` in the top ``percent`` % by ``p * exposure``.

    Negatives' value is ignored. Returns NaN when the positives' value sums to zero (nothing to
    capture). ``value`` must be non-negative (clip, e.g., a shrinking upsell account to 0).
    """
    y, p = _check_scores(y_true, p)
    value = _check_weights(value, len(y), "value")
    ranking = p if exposure is None else p * _check_weights(exposure, len(y), "exposure")
    gained = value * y
    if gained.sum() <= 0:
        return float("nan")
    return top_share(ranking, gained, percent)


def lift_table(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Rows ranked by score and cut into ``n_bins`` bins (1 = highest scores).

    Columns: ``decile`` (the bin number, whatever ``n_bins``), ``count``, ``positives``,
    ``rate``, ``lift`` (rate / overall rate), ``cumulative_gain`` (share of all positives in
    bins 1..d). Bin d ends after the top ``ceil(d * n / n_bins)`` rows; ties across a boundary
    are shared, so ``positives`` can be fractional. With ``n_bins=10`` the first row's lift
    equals ``lift_at_10``.
    """
    y, p = _check_scores(y, p)
    _require_positive(y)
    n = len(y)
    if not 1 <= n_bins <= n:
        raise ValueError(f"n_bins must be between 1 and the number of rows ({n}), got {n_bins}")
    ends = np.array([-(-d * n // n_bins) for d in range(n_bins + 1)])
    cum_pos = np.array([_top_weight(p, y, int(k)) for k in ends])
    count = np.diff(ends)
    positives = np.diff(cum_pos)
    rate = positives / count
    return pd.DataFrame(
        {
            "decile": np.arange(1, n_bins + 1),
            "count": count,
            "positives": positives,
            "rate": rate,
            "lift": rate / y.mean(),
            "cumulative_gain": cum_pos[1:] / y.sum(),
        }
    )


def compare(
    model: Mapping[str, float],
    baseline: Mapping[str, float],
    keys: Iterable[str] = COMPARE_KEYS,
) -> dict[str, float]:
    """``model[key] - baseline[key]`` for each key.

    The sign is raw: a positive difference is better for AUC and lift, worse for the keys in
    ``LOWER_IS_BETTER`` (log loss, Brier, ECE).
    """
    keys = tuple(keys)
    missing = [k for k in keys if k not in model or k not in baseline]
    if missing:
        raise KeyError(f"metrics missing from model or baseline: {missing}")
    return {k: float(model[k]) - float(baseline[k]) for k in keys}


def _top_count(n: int, percent: float) -> int:
    """Rows in the top ``percent`` %: ``ceil(percent * n / 100)``, at least 1."""
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    # Integer arithmetic where possible: 0.1 * 30 is 3.0000000000000004 in floating point.
    if float(percent).is_integer():
        k = -(-int(percent) * n // 100)
    else:
        k = int(np.ceil(round(percent * n / 100, 9)))
    return max(1, min(n, k))


def _top_weight(scores: np.ndarray, weights: np.ndarray, k: int) -> float:
    """Total weight of the ``k`` highest scores, sharing the cut-off score's tie group."""
    if k <= 0:
        return 0.0
    if k >= len(scores):
        return float(weights.sum())
    n = len(scores)
    cut = np.partition(scores, n - k)[n - k]  # the k-th highest score, in O(n)
    above = scores > cut
    tied = scores == cut
    places_left = k - int(above.sum())
    return float(weights[above].sum() + weights[tied].sum() * places_left / int(tied.sum()))


def _check_scores(y_true: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(p, dtype=float)
    if y.ndim != 1 or p.ndim != 1:
        raise ValueError("y_true and p must be one-dimensional")
    if len(y) != len(p):
        raise ValueError(f"y_true has {len(y)} rows but p has {len(p)}")
    if len(y) == 0:
        raise ValueError("no rows to evaluate")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("p must hold finite probabilities in [0, 1]")
    y = y.astype(float)
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y_true must hold only 0 and 1")
    return y, p


def _check_weights(w: np.ndarray, n: int, name: str) -> np.ndarray:
    w = np.asarray(w, dtype=float)
    if w.shape != (n,):
        raise ValueError(f"{name} must be one-dimensional with {n} rows, got shape {w.shape}")
    if not np.all(np.isfinite(w)) or w.min() < 0:
        raise ValueError(f"{name} must be finite and non-negative")
    return w


def _require_both_classes(y: np.ndarray) -> None:
    if y.min() == y.max():
        only = int(y[0])
        raise ValueError(
            f"y_true holds a single class (every row is {only}): ROC AUC and the other "
            "ranking metrics are undefined; evaluate on a window with both outcomes"
        )


def _require_positive(y: np.ndarray) -> None:
    if y.sum() == 0:
        raise ValueError("y_true has no positives: lift and recall are undefined")
