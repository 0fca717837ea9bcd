"""Performance of past score runs: realised once their labels have matured, estimated before.

Realised: ROC AUC, lift in the top 10 %, expected calibration error with its curve, and the
revenue capture of the top 10 % (ranked by probability x ARR), with bootstrap intervals. The
rules are training's (``training.metrics``: top k % = ceil(k n / 100) rows, ties at the cut-off
share it, ECE over 10 equal-width bins); serving may not import training, so they are repeated
here and a test pins the two together. A run scores each account once, so resampling rows is
resampling accounts.

Estimated (confidence-based performance estimation, CBPE): a calibrated probability p says the
account is positive with probability p, so without any label the expected true- and
false-positive counts above every threshold are the sums of p and of 1 - p there; the expected
ROC curve, hence the expected AUC, follows. Its error is stated by simulation: outcomes drawn
from the probabilities give the spread of the AUC a calibrated model would realise on these
accounts (``estimated_roc_auc_sd``), and the ECE such a model would show from chance alone.
The estimate is only as good as the calibration: the report shows it beside the realised value
wherever both exist, so its own error is visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOP_PERCENT = 10
N_BINS = 10
BOOTSTRAP = 200
SIMULATIONS = 200
LEVEL = 0.95


# --- metrics (training.metrics' rules) -----------------------------------------------------
def roc_auc(y: np.ndarray, p: np.ndarray, levels: np.ndarray | None = None) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count a half): sklearn's value, without its
    input checks, which cost ~1 ms a call, and the bootstrap and the estimate make thousands
    of calls. NaN when one class is absent. ``levels``: each score's position among the
    distinct scores of a larger sample (the bootstrap's), which ranks without sorting."""
    from scipy.stats import rankdata

    if levels is None:
        return auc_from_ranks(y, rankdata(np.asarray(p, dtype=float)))  # ties: average rank
    counts = np.bincount(levels)
    average = np.cumsum(counts) - (counts - 1) / 2  # the average rank of each level
    return auc_from_ranks(y, average[levels])


def auc_from_ranks(y: np.ndarray, ranks: np.ndarray) -> float:
    """ROC AUC of outcomes ``y`` given the scores' ranks (1..n, ties averaged): the estimate
    ranks its fixed probabilities once for all its simulated outcomes."""
    y = np.asarray(y, dtype=float)
    positives = float(y.sum())
    negatives = len(y) - positives
    if positives <= 0 or negatives <= 0:
        return float("nan")
    return float((ranks[y > 0].sum() - positives * (positives + 1) / 2)
                 / (positives * negatives))


def ece(y: np.ndarray, p: np.ndarray, n_bins: int = N_BINS) -> float:
    """sum_b |sum y_b - sum p_b| / n over equal-width bins (1.0 in the last)."""
    bins = np.minimum(np.floor(p * n_bins).astype(np.int64), n_bins - 1)
    sum_y = np.bincount(bins, weights=y, minlength=n_bins)
    sum_p = np.bincount(bins, weights=p, minlength=n_bins)
    return float(np.abs(sum_y - sum_p).sum() / len(y))


def calibration_curve(y: np.ndarray, p: np.ndarray, n_bins: int = N_BINS) -> list[dict]:
    """Per non-empty equal-width bin: accounts, mean probability, observed rate."""
    bins = np.minimum(np.floor(p * n_bins).astype(np.int64), n_bins - 1)
    out = []
    for b in range(n_bins):
        rows = bins == b
        if rows.any():
            out.append({"bin": b, "accounts": int(rows.sum()),
                        "mean_probability": float(p[rows].mean()),
                        "observed_rate": float(y[rows].mean())})
    return out


def top_count(n: int, percent: int = TOP_PERCENT) -> int:
    return max(1, min(n, -(-percent * n // 100)))


def top_weight(scores: np.ndarray, weights: np.ndarray, k: int) -> float:
    """Weight of the k highest scores; the cut-off's tie group shares the places left."""
    if k >= len(scores):
        return float(weights.sum())
    cut = np.partition(scores, len(scores) - k)[len(scores) - k]
    above, tied = scores > cut, scores == cut
    return float(weights[above].sum()
                 + weights[tied].sum() * (k - int(above.sum())) / int(tied.sum()))


def lift(y: np.ndarray, p: np.ndarray, percent: int = TOP_PERCENT) -> float:
    k = top_count(len(y), percent)
    return float(top_weight(p, y, k) / k / y.mean())


def revenue_capture(y: np.ndarray, p: np.ndarray, value: np.ndarray, exposure: np.ndarray,
                    percent: int = TOP_PERCENT) -> float:
    """Share of the positives' value in the top ``percent`` % by ``p x exposure``."""
    gained = value * y
    if gained.sum() <= 0:
        return float("nan")
    return top_weight(p * exposure, gained, top_count(len(y), percent)) / float(gained.sum())


def realised_metrics(y: np.ndarray, p: np.ndarray, value: np.ndarray,
                     exposure: np.ndarray, levels: np.ndarray | None = None
                     ) -> dict[str, float]:
    return {"roc_auc": roc_auc(y, p, levels), "lift_at_10": lift(y, p), "ece": ece(y, p),
            "revenue_capture_at_10": revenue_capture(y, p, value, exposure)}


# --- intervals -------------------------------------------------------------------------------
def bootstrap_intervals(y: np.ndarray, p: np.ndarray, value: np.ndarray, exposure: np.ndarray,
                        replicates: int = BOOTSTRAP, seed: int = 0, level: float = LEVEL,
                        accounts: np.ndarray | None = None) -> dict[str, list[float]]:
    """Percentile intervals of each realised metric over accounts resampled with replacement
    (a resample with one class only is skipped: its AUC is undefined). ``accounts``: each
    row's account when an account has several rows (cross-sell's products): an account is
    drawn with all its rows, since its rows are not independent; None: a row per account."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    n = len(y)
    resample = (lambda: rng.integers(0, n, n)) if accounts is None else account_resampler(
        accounts, rng)
    levels = np.unique(p, return_inverse=True)[1]  # ranks a resample without sorting it
    for _ in range(replicates):
        rows = resample()
        if y[rows].min() == y[rows].max():
            continue
        for key, v in realised_metrics(y[rows], p[rows], value[rows], exposure[rows],
                                       levels[rows]).items():
            draws.setdefault(key, []).append(v)
    tail = (1 - level) / 2 * 100
    return {key: [float(np.nanpercentile(v, tail)), float(np.nanpercentile(v, 100 - tail))]
            for key, v in draws.items() if np.isfinite(v).any()}


def account_resampler(accounts: np.ndarray, rng: np.random.Generator):
    """A function drawing as many accounts as there are, with replacement, and returning the
    row positions of every drawn account (an account drawn twice: its rows twice)."""
    codes = np.unique(np.asarray(accounts), return_inverse=True)[1]
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.r_[0, np.cumsum(counts)[:-1]]

    def draw() -> np.ndarray:
        picked = rng.integers(0, len(counts), len(counts))
        sizes = counts[picked]
        offsets = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        return order[np.repeat(starts[picked], sizes) + offsets]

    return draw


# --- estimation without labels (CBPE) -------------------------------------------------------
def expected_roc_auc(p: np.ndarray) -> float:
    """The ROC AUC expected when each account is positive with its probability ``p``: the
    area under the curve of expected true- against false-positive rates (ties as one step)."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(-p, kind="stable")
    ps = p[order]
    last = np.r_[np.nonzero(np.diff(ps))[0], len(ps) - 1]  # end of each tie group
    tp = np.r_[0.0, np.cumsum(ps)[last]]
    fp = np.r_[0.0, np.cumsum(1 - ps)[last]]
    if tp[-1] <= 0 or fp[-1] <= 0:
        return float("nan")
    return float(np.trapezoid(tp / tp[-1], fp / fp[-1]))


@dataclass(frozen=True)
class Estimate:
    roc_auc: float
    roc_auc_sd: float  # spread of the AUC a calibrated model realises on these accounts
    expected_ece: float  # ECE a calibrated model shows from chance alone at this size
    positive_rate: float


def estimate(p: np.ndarray, simulations: int = SIMULATIONS, seed: int = 0) -> Estimate:
    """CBPE's expected AUC and the error to expect of it, from the probabilities alone."""
    from scipy.stats import rankdata

    p = np.asarray(p, dtype=float)
    rng = np.random.default_rng(seed)
    ranks = rankdata(p)
    aucs, eces = [], []
    for _ in range(simulations):
        y = (rng.random(len(p)) < p).astype(float)
        if 0 < y.sum() < len(y):
            aucs.append(auc_from_ranks(y, ranks))
        eces.append(ece(y, p))
    return Estimate(expected_roc_auc(p), float(np.std(aucs)) if aucs else float("nan"),
                    float(np.mean(eces)), float(p.mean()))


