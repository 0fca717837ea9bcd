"""Bootstrap intervals over accounts, and paired differences on the same resamples.

A test window holds several rows per account (one per snapshot date, and one per cut-off in a
pooled backtest), and those rows are not independent: the resampling unit is the account.
Each resample draws as many accounts as there are, with replacement, and keeps all rows of each
drawn account (an account drawn twice counts twice). Every candidate is scored on the *same*
resamples, so a difference between two candidates is paired: the variation that moves both
(an easy or a hard draw of accounts) cancels, and its interval is much narrower than either
candidate's own.

Intervals are percentile intervals (95 % by default) of ``n_resamples`` resamples drawn from a
seeded generator: same rows, scores and seed, same interval. The point value is the metric on
the rows as they are and equals :func:`training.metrics.evaluate`'s. A resample in which a
metric is undefined (no positive or no negative row drawn) is left out of that metric's
interval.

The metrics are computed for all resamples at once from per-row resample counts (a matrix of
resamples x rows), by sorting the scores once and summing the counts per distinct score, with
the conventions of :mod:`training.metrics` (ties share the cut-off of the top 10 %; the top
10 % of a resample is ``ceil(10 * rows drawn / 100)`` rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from training.metrics import VALUE_CAPTURE_PERCENT

N_RESAMPLES = 400
CONFIDENCE = 0.95
LIFT_PERCENT = 10
METRICS = ("roc_auc", "pr_auc", "lift_at_10", f"value_capture_at_{VALUE_CAPTURE_PERCENT}")
CHUNK_CELLS = 4_000_000  # resamples x rows held in memory at once (32 MB of float64)


@dataclass(frozen=True)
class Interval:
    """A metric (or a difference of two) on the rows as they are, and its bootstrap interval."""

    value: float
    lo: float
    hi: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi}

    def text(self, signed: bool = False) -> str:
        fmt = "{:+.4f}" if signed else "{:.4f}"
        return f"{fmt.format(self.value)} [{fmt.format(self.lo)}, {fmt.format(self.hi)}]"


@dataclass(frozen=True)
class Uncertainty:
    """Per candidate and per pair (``"a - b"``), metric name -> :class:`Interval`."""

    metrics: dict[str, dict[str, Interval]]
    differences: dict[str, dict[str, Interval]]
    n_resamples: int
    confidence: float
    seed: int
    groups: int  # accounts (or ids, or rows) resampled
    unit: str = "accounts"

    def as_json(self) -> dict:
        return {
            "method": f"bootstrap over {self.groups:,} {self.unit}, {self.n_resamples} resamples, "
                      f"{self.confidence:.0%} percentile intervals, seed {self.seed}",
            "metrics": {c: {m: i.as_dict() for m, i in ms.items()}
                        for c, ms in self.metrics.items()},
            "differences": {p: {m: i.as_dict() for m, i in ms.items()}
                            for p, ms in self.differences.items()},
        }

    def mlflow_metrics(self, names: Mapping[str, str]) -> dict[str, float]:
        """Flat finite metrics for MLflow: ``<prefix><metric>_lo`` / ``_hi`` per candidate, with
        ``names`` mapping a candidate to its prefix (``model`` -> ``test_``), and
        ``diff_<b>_<metric>`` (+ ``_lo`` / ``_hi``) for each pair ``model - <b>``."""
        out: dict[str, float] = {}
        for cand, prefix in names.items():
            for metric, iv in self.metrics.get(cand, {}).items():
                out[f"{prefix}{metric}_lo"] = iv.lo
                out[f"{prefix}{metric}_hi"] = iv.hi
        for pair, ms in self.differences.items():
            other = pair.split(" - ", 1)[1]
            for metric, iv in ms.items():
                key = f"diff_{other}_{metric}"
                out.update({key: iv.value, f"{key}_lo": iv.lo, f"{key}_hi": iv.hi})
        return {k: float(v) for k, v in out.items() if np.isfinite(v)}


def bootstrap(
    y: np.ndarray,
    scores: Mapping[str, np.ndarray],
    groups: np.ndarray | None = None,
    *,
    value: np.ndarray | None = None,
    exposure: np.ndarray | None = None,
    pairs: Iterable[tuple[str, str]] = (),
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    unit: str = "accounts",
) -> Uncertainty:
    """Intervals of :data:`METRICS` for every score in ``scores`` (probabilities of the rows of
    ``y``), resampling ``groups`` (one key per row, e.g. the account id; None: each row alone),
    and paired differences ``a - b`` for each ``(a, b)`` in ``pairs``.

    ``value`` (realised value of a positive) and ``exposure`` (what is at stake, ranks with the
    probability) give ``value_capture_at_10`` as in :func:`training.metrics.evaluate`; without
    ``value`` that metric is left out. ``unit`` names what ``groups`` holds, for the report.
    """
    y = np.asarray(y, dtype=float)
    n = len(y)
    if n == 0:
        raise ValueError("no rows to resample")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y must hold only 0 and 1")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    pairs = list(pairs)
    for a, b in pairs:
        for name in (a, b):
            if name not in scores:
                raise KeyError(f"pair ({a!r}, {b!r}): no score named {name!r}")
    codes = _group_codes(groups, n)
    n_groups = int(codes.max()) + 1
    gained = None
    if value is not None:
        gained = np.clip(np.asarray(value, dtype=float), 0, None) * y
    ex = None if exposure is None else np.asarray(exposure, dtype=float)
    prepared = {name: _Ranked(np.asarray(p, dtype=float), y, codes, n_groups, gained, ex)
                for name, p in scores.items()}

    point = {name: r.metrics(np.ones((n_groups, 1))) for name, r in prepared.items()}
    draws: dict[str, dict[str, list[np.ndarray]]] = {
        name: {m: [] for m in point[name]} for name in prepared}
    rng = np.random.default_rng(seed)
    chunk = max(1, CHUNK_CELLS // n)
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        picked = rng.integers(0, n_groups, size=(size, n_groups))
        offsets = (np.arange(size) * n_groups)[:, None]
        counts = np.bincount((picked + offsets).ravel(), minlength=size * n_groups)
        counts = np.ascontiguousarray(counts.reshape(size, n_groups).T, dtype=float)
        for name, ranked in prepared.items():
            for metric, values in ranked.metrics(counts).items():
                draws[name][metric].append(values)
    resampled = {name: {m: np.concatenate(v) for m, v in ms.items()}
                 for name, ms in draws.items()}

    tail = (1 - confidence) / 2 * 100
    intervals = {
        name: {m: _interval(point[name][m][0], resampled[name][m], tail) for m in point[name]}
        for name in prepared
    }
    differences = {
        f"{a} - {b}": {
            m: _interval(point[a][m][0] - point[b][m][0],
                         resampled[a][m] - resampled[b][m], tail)
            for m in point[a]
        }
        for a, b in pairs
    }
    return Uncertainty(intervals, differences, n_resamples, confidence, seed, n_groups, unit)


def _group_codes(groups: np.ndarray | None, n: int) -> np.ndarray:
    if groups is None:
        return np.arange(n)
    import pandas as pd

    groups = np.asarray(groups)
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} rows but y has {n}")
    codes, _ = pd.factorize(groups)
    if (codes < 0).any():
        raise ValueError("groups holds missing keys: every row needs its account")
    return codes


def _interval(point: float, draws: np.ndarray, tail: float) -> Interval:
    finite = draws[np.isfinite(draws)]
    if len(finite) == 0 or not np.isfinite(point):
        return Interval(float(point), float("nan"), float("nan"))
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return Interval(float(point), float(lo), float(hi))


class _Ranked:
    """One score's rows sorted once into groups of equal scores, highest first, so that every
    resample's metrics follow from sums per group: sparse (groups x accounts) matrices times
    the (accounts x resamples) matrix of how often each account was drawn.

    Two cheaper groupings keep this fast on large windows, each exact: for ROC AUC and average
    precision, a run of groups holding only negatives is one group (the metrics read the
    cumulative counts at groups holding positives only); for a top-10 % share, the groups
    below the top 30 % of rows are one group (a resample whose cut falls there, which takes
    a most unusual draw, is recomputed from every group).
    """

    def __init__(self, p: np.ndarray, y: np.ndarray, codes: np.ndarray, n_groups: int,
                 gained: np.ndarray | None, exposure: np.ndarray | None):
        if p.shape != y.shape:
            raise ValueError(f"a score has {len(p)} rows but y has {len(y)}")
        if not np.all(np.isfinite(p)):
            raise ValueError("scores must be finite")
        ones = np.ones(len(p))
        group = _descending_groups(p)
        has_pos = np.bincount(group, weights=y) > 0
        opens = has_pos | np.r_[True, has_pos[:-1]]  # after a positive group, or positive
        merged = (np.cumsum(opens) - 1)[group]
        self.rows = _matrix(merged, codes, n_groups, ones)
        self.pos = _matrix(merged, codes, n_groups, y)
        self.top = _TopShare(group, codes, n_groups, ones, y)
        self.value = None
        if gained is not None:
            ranking = p if exposure is None else p * exposure
            self.value = _TopShare(_descending_groups(ranking), codes, n_groups, ones, gained)

    def metrics(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """Metrics per resample; ``counts[a, b]``: times account ``a`` is drawn in resample b."""
        count = self.rows @ counts  # (groups x resamples), highest score first
        pos = self.pos @ counts
        neg = count - pos
        total_pos, total_neg = pos.sum(axis=0), neg.sum(axis=0)
        rows = count.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            # ROC AUC: each positive beats the negatives below it and half of those tied.
            neg_below = total_neg - np.cumsum(neg, axis=0)
            neg_below += neg / 2
            auc = np.einsum("gb,gb->b", pos, neg_below) / (total_pos * total_neg)
            # Average precision: the precision at each distinct score, weighted by its positives.
            cum_count = np.cumsum(count, axis=0)
            precision = np.cumsum(pos, axis=0)
            precision /= np.where(cum_count > 0, cum_count, 1)
            ap = np.einsum("gb,gb->b", pos, precision) / total_pos
            top = _top_counts(rows, LIFT_PERCENT)
            lift = self.top.sum(counts, top) / top / (total_pos / rows)
        auc[(total_pos == 0) | (total_neg == 0)] = np.nan
        ap[total_pos == 0] = np.nan
        lift[total_pos == 0] = np.nan
        out = {"roc_auc": auc, "pr_auc": ap, "lift_at_10": lift}
        if self.value is not None:
            total = self.value.total(counts)
            top = _top_counts(rows, VALUE_CAPTURE_PERCENT)
            with np.errstate(invalid="ignore", divide="ignore"):
                capture = self.value.sum(counts, top) / total
            capture[total <= 0] = np.nan
            out[f"value_capture_at_{VALUE_CAPTURE_PERCENT}"] = capture
        return out


class _TopShare:
    """A weight summed over the top ``k`` rows of a ranking, per resample, the group of equal
    scores at the cut-off sharing it in proportion to the places left."""

    HEAD = 0.3  # share of the rows kept group by group; the rest is one group

    def __init__(self, group: np.ndarray, codes: np.ndarray, n_groups: int, ones: np.ndarray,
                 weights: np.ndarray):
        self.full = (_matrix(group, codes, n_groups, ones),
                     _matrix(group, codes, n_groups, weights))
        sizes = np.cumsum(np.bincount(group))
        head = int(np.searchsorted(sizes, np.ceil(self.HEAD * len(group)))) + 1
        self.head = None
        if head < len(sizes) - 1:
            short = np.minimum(group, head)
            self.head = (_matrix(short, codes, n_groups, ones),
                         _matrix(short, codes, n_groups, weights))

    def total(self, counts: np.ndarray) -> np.ndarray:
        return np.asarray((self.full[1] @ counts).sum(axis=0))

    def sum(self, counts: np.ndarray, k: np.ndarray) -> np.ndarray:
        if self.head is not None:
            out, cut = _top_sum(*(m @ counts for m in self.head), k)
            tail = cut == self.head[0].shape[0] - 1
            if not tail.any():
                return out
            out[tail] = _top_sum(*(m @ counts[:, tail] for m in self.full), k[tail])[0]
            return out
        return _top_sum(*(m @ counts for m in self.full), k)[0]


def _descending_groups(scores: np.ndarray) -> np.ndarray:
    """Each row's group of equal scores, 0 for the highest score."""
    return np.unique(-scores, return_inverse=True)[1].ravel()


def _matrix(group: np.ndarray, codes: np.ndarray, n_groups: int, weights: np.ndarray):
    """Sparse (score groups x accounts): the summed ``weights`` of each account's rows in each
    group."""
    from scipy import sparse

    return sparse.csr_matrix((weights, (group, codes)), shape=(int(group.max()) + 1, n_groups))


def _top_counts(rows: np.ndarray, percent: int) -> np.ndarray:
    """``ceil(percent * rows / 100)`` in integers (at least 1), as in training.metrics."""
    rows = np.rint(rows).astype(np.int64)
    return np.maximum(1, -(-percent * rows // 100)).astype(float)


def _top_sum(count: np.ndarray, target: np.ndarray, k: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Per resample (column), the ``target`` summed over the ``k`` highest-scored rows (ties
    at the cut share it), and the group in which the cut falls."""
    cum_count = np.cumsum(count, axis=0)
    cut = np.minimum((cum_count < k).sum(axis=0), count.shape[0] - 1)
    cols = np.arange(count.shape[1])
    at_cut = count[cut, cols]
    before_count = cum_count[cut, cols] - at_cut
    before_target = np.cumsum(target, axis=0)[cut, cols] - target[cut, cols]
    share = (k - before_count) / np.where(at_cut > 0, at_cut, 1)
    return before_target + target[cut, cols] * np.minimum(share, 1.0), cut
