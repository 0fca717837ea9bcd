"""The logistic regression's design matrix, written in place, column block by column block.

sklearn's ColumnTransformer(SimpleImputer(median, add_indicator) -> StandardScaler -> clip,
OneHotEncoder) makes several whole-design temporaries (the masked copy behind the median, the
imputed copy, the indicator block, the scaler's centred and NaN-replaced copies, the hstack):
at 1.2 M rows x ~81 features the logistic fit peaked at 6.45 GB. `LinearDesign` fits the same
statistics with the same sklearn code, but on a few columns at a time, and writes the imputed,
standardised, clipped numerics, the missing indicators and the one-hot levels straight into one
preallocated C-ordered float64 array (which LogisticRegression then reads without a copy).
Its output equals the ColumnTransformer's exactly (tests/training/test_linear_design.py).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

BLOCK = 8  # columns per block: temporaries are n_rows x BLOCK, not n_rows x design width


class LinearDesign(TransformerMixin, BaseEstimator):
    """Numerics (the first ``n_numeric`` input columns): median imputation, a missing
    indicator for each column that had a missing value in training, standardisation of both
    (mean, population standard deviation; a constant column keeps scale 1), clipping to
    +-``clip``. Categoricals (the rest, as level codes): one column per level in ``levels``
    (the number of levels per categorical); unknown or missing codes give all zeros.

    Fitted: ``median_`` (0 for an all-missing column), ``flagged_`` (the indexes of the
    numerics with an indicator), ``mean_``, ``var_``, ``scale_`` over the numerics then the
    indicators, ``n_samples_seen_``.
    """

    def __init__(self, n_numeric: int, levels: tuple[int, ...] = (), clip: float = 5.0):
        self.n_numeric = n_numeric
        self.levels = levels
        self.clip = clip

    def fit(self, X: np.ndarray, y=None) -> LinearDesign:
        self._check(X)
        n = self.n_numeric
        medians, flagged = [], []
        for start in range(0, n, BLOCK):
            block = X[:, start:min(start + BLOCK, n)]
            missing = np.isnan(block)
            # SimpleImputer's own median (np.ma.median over the non-missing values)
            median = np.ma.median(np.ma.masked_array(block, mask=missing), axis=0)
            values = np.ma.getdata(median).astype("float64", copy=True)
            values[np.ma.getmaskarray(median)] = 0.0  # keep_empty_features: 0
            medians.append(values)
            flagged.extend((start + np.flatnonzero(missing.any(axis=0))).tolist())
        self.median_ = np.concatenate(medians) if medians else np.zeros(0)
        self.flagged_ = np.asarray(flagged, dtype="int64")
        self.mean_, self.var_, self.scale_ = self._standard_statistics(X)
        self.n_samples_seen_ = X.shape[0]
        self.n_features_in_ = X.shape[1]
        return self

    def _standard_statistics(self, X: np.ndarray) -> tuple[np.ndarray, ...]:
        """StandardScaler's mean, var and scale of [imputed numerics | indicators], fitted on
        column blocks laid out as sklearn's scaler sees the whole: numpy sums a column-major
        column pairwise, a row-major one row by row, and the last bits differ. A row-major
        block keeps at least two columns (one column alone would be summed pairwise)."""
        width = self.n_numeric + len(self.flagged_)
        if width == 0:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        order = _scaler_layout(X, self.n_numeric, self.flagged_)
        stats = [np.empty(width) for _ in range(3)]
        for start in range(0, width, BLOCK):
            stop = min(start + BLOCK, width)
            lo = max(0, stop - 2) if order == "C" and stop - start == 1 else start
            block = np.empty((X.shape[0], stop - lo), order=order)
            for k, j in enumerate(range(lo, stop)):
                block[:, k] = self._imputed(X, j)
            scaler = StandardScaler(copy=False).fit(block)
            for out, fitted in zip(stats, (scaler.mean_, scaler.var_, scaler.scale_),
                                   strict=True):
                out[start:stop] = fitted[start - lo:]
        return tuple(stats)

    def _imputed(self, X: np.ndarray, j: int) -> np.ndarray:
        """Column j of [imputed numerics | indicators] (before standardisation)."""
        if j < self.n_numeric:
            col = X[:, j]
            return np.where(np.isnan(col), self.median_[j], col)
        return np.isnan(X[:, self.flagged_[j - self.n_numeric]]).astype("float64")

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "median_")
        self._check(X)
        n, width = self.n_numeric, self.n_numeric + len(self.flagged_)
        out = np.zeros((X.shape[0], width + sum(self.levels)), dtype="float64")
        for start in range(0, n, BLOCK):
            stop = min(start + BLOCK, n)
            part = out[:, start:stop]
            np.copyto(part, X[:, start:stop])
            missing = np.isnan(part)
            np.copyto(part, np.broadcast_to(self.median_[start:stop], part.shape),
                      where=missing)
            self._standardise(part, slice(start, stop))
        for k, j in enumerate(self.flagged_):
            col = out[:, n + k]
            col[:] = np.isnan(X[:, j])
            self._standardise(col, n + k)
        start = width
        for c, count in enumerate(self.levels):
            codes = X[:, n + c]
            rows = np.flatnonzero((codes >= 0) & (codes < count) & (codes == np.floor(codes)))
            out[rows, start + codes[rows].astype("int64")] = 1.0
            start += count
        return out

    def _standardise(self, part: np.ndarray, where: slice | int) -> None:
        """StandardScaler's transform (subtract the mean, divide by the scale), then the clip,
        all in place."""
        part -= self.mean_[where]
        part /= self.scale_[where]
        np.clip(part, -self.clip, self.clip, out=part)

    def _check(self, X: np.ndarray) -> None:
        expected = self.n_numeric + len(self.levels)
        if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[1] != expected:
            raise ValueError(f"the linear design needs a float matrix of {expected} columns "
                             f"({self.n_numeric} numeric, {len(self.levels)} categorical), got "
                             f"{getattr(X, 'shape', type(X).__name__)}")


def _scaler_layout(X: np.ndarray, n: int, flagged: np.ndarray) -> str:
    """"C" or "F": the memory layout in which the ColumnTransformer's StandardScaler receives
    [imputed numerics | indicators] for an input laid out as X, found by running that very
    path (column selection, SimpleImputer with its indicators) on four rows of zeros with X's
    layout and the same columns missing."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    proxy = np.zeros_like(X[:4])
    proxy[0, flagged] = np.nan
    seen: list[str] = []

    def record(z: np.ndarray) -> np.ndarray:
        seen.append("C" if z.flags.c_contiguous else "F")
        return z

    ColumnTransformer([("numeric", make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
        FunctionTransformer(record)), list(range(n)))]).fit(proxy)
    return seen[0]
