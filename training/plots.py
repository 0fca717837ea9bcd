"""Report figures as PNG files, logged beside a training run.

Each function takes the data and a ``path`` and returns the path of the PNG it wrote. ``path``
is either the file to write (ending in ``.png``) or a directory, in which case the figure gets
its standard name there (``roc_pr.png``, ``calibration.png``, ``lift_gain.png``,
``feature_importance.png``, ``shap_summary.png``). Parent directories are created.

Figures are drawn with matplotlib's object API on an Agg canvas (``Figure`` + ``savefig``): no
pyplot, no global backend switch, safe in a server or a worker thread. matplotlib is imported
inside the functions so importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from training.metrics import expected_calibration_error, lift_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
MAX_POINTS_PER_FEATURE = 2000  # SHAP beeswarm: rows drawn per feature (sampled, seed 0)


def roc_pr_curves(y: np.ndarray, scores: Mapping[str, np.ndarray], path: Path | str) -> Path:
    """ROC (left) and precision-recall (right) curves of the model and its baselines.

    ``scores`` maps a legend name to that scorer's scores; the first entry is drawn first.
    """
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    y = _labels(y)
    if not scores:
        raise ValueError("scores is empty: give at least the model's scores")
    fig = _figure(12, 5.2)
    roc_ax, pr_ax = fig.subplots(1, 2)
    for name, s in scores.items():
        s = _same_length(s, y, name)
        fpr, tpr, _ = roc_curve(y, s)
        roc_ax.plot(fpr, tpr, lw=1.8, label=f"{name} (AUC {roc_auc_score(y, s):.3f})")
        precision, recall, _ = precision_recall_curve(y, s)
        ap = average_precision_score(y, s)
        pr_ax.step(recall, precision, where="post", lw=1.8, label=f"{name} (AP {ap:.3f})")
    roc_ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    pr_ax.axhline(y.mean(), ls="--", color="grey", lw=1, label=f"chance ({y.mean():.3f})")
    _style(roc_ax, "ROC curve", "False positive rate", "True positive rate (recall)")
    _style(pr_ax, "Precision-recall curve", "Recall", "Precision")
    for ax in (roc_ax, pr_ax):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
    roc_ax.legend(loc="lower right", fontsize=9)
    pr_ax.legend(loc="upper right", fontsize=9)
    fig.suptitle(f"Ranking quality on {len(y):,} rows ({int(y.sum()):,} positives)")
    return _save(fig, path, "roc_pr.png")


def calibration_curve(
    y: np.ndarray,
    p_before: np.ndarray,
    p_after: np.ndarray,
    path: Path | str,
    n_bins: int = 10,
) -> Path:
    """Reliability diagram before and after calibration, with the distribution of scores below.

    Points are quantile bins (equal row counts), which stay informative when probabilities crowd
    near zero; the legend's ECE uses the equal-width bins of ``metrics.evaluate``.
    """
    y = _labels(y)
    series = {
        "before calibration": _same_length(p_before, y, "p_before"),
        "after calibration": _same_length(p_after, y, "p_after"),
    }
    fig = _figure(7, 8)
    curve_ax, hist_ax = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    points = {name: _quantile_bins(y, p, n_bins) for name, p in series.items()}
    # Zoom on where the bins are (a few outlying scores would otherwise squash the curve).
    top = max(max(float(m.max()), float(r.max())) for m, r in points.values()) * 1.15
    top = min(1.0, max(top, 0.05))
    curve_ax.plot([0, top], [0, top], ls="--", color="grey", lw=1, label="perfectly calibrated")
    for (name, p), marker in zip(series.items(), ("o", "s"), strict=True):
        mean_p, rate = points[name]
        ece = expected_calibration_error(y, p)
        curve_ax.plot(mean_p, rate, marker=marker, lw=1.5, label=f"{name} (ECE {ece:.4f})")
        hist_ax.hist(p, bins=np.linspace(0, top, 51), histtype="step", lw=1.5, label=name)
    _style(curve_ax, "Calibration curve", "", "Observed positive rate")
    curve_ax.set_xlim(0, top)
    curve_ax.set_ylim(0, top)
    curve_ax.legend(loc="upper left", fontsize=9)
    _style(hist_ax, "", "Predicted probability (mean per bin above)", "Rows")
    hist_ax.set_yscale("log")
    hist_ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path, "calibration.png")


def lift_gain_chart(y: np.ndarray, p: np.ndarray, path: Path | str) -> Path:
    """Cumulative gain curve (left) and lift per decile (right)."""
    y = _labels(y)
    p = _same_length(p, y, "p")
    fig = _figure(12, 5.2)
    gain_ax, lift_ax = fig.subplots(1, 2)

    fine = lift_table(y, p, n_bins=min(100, len(y)))
    share = np.concatenate([[0.0], fine["count"].cumsum() / len(y)])
    gain = np.concatenate([[0.0], fine["cumulative_gain"]])
    gain_ax.plot(share * 100, gain * 100, lw=2, label="model")
    gain_ax.plot([0, 100], [0, 100], ls="--", color="grey", lw=1, label="chance")
    rate = y.mean()
    gain_ax.plot([0, rate * 100, 100], [0, 100, 100], ls=":", color="black", lw=1, label="perfect")
    _style(gain_ax, "Cumulative gain", "Accounts targeted (% by score)", "Positives captured (%)")
    gain_ax.set_xlim(0, 100)
    gain_ax.set_ylim(0, 101)
    gain_ax.legend(loc="lower right", fontsize=9)

    deciles = lift_table(y, p, n_bins=min(10, len(y)))
    bars = lift_ax.bar(deciles["decile"], deciles["lift"], color="tab:blue")
    lift_ax.bar_label(bars, fmt="%.2f", fontsize=8)
    lift_ax.axhline(1.0, ls="--", color="grey", lw=1, label="chance (lift 1)")
    lift_ax.set_xticks(deciles["decile"])
    _style(lift_ax, "Lift by decile", "Decile (1 = highest scores)", "Lift over the average rate")
    lift_ax.legend(loc="upper right", fontsize=9)
    return _save(fig, path, "lift_gain.png")


def feature_importance(
    names: Sequence[str], gains: np.ndarray, path: Path | str, top: int = 25,
    measure: str = "Total gain",
) -> Path:
    """Horizontal bars of the ``top`` features by ``gains`` (what they are: ``measure``, the
    axis label; LightGBM's total gain by default), largest at the top."""
    gains = np.asarray(gains, dtype=float)
    if gains.shape != (len(names),):
        raise ValueError(f"{len(names)} names but gains has shape {gains.shape}")
    order = np.argsort(-gains, kind="stable")[:top]
    total = gains.sum()
    fig = _figure(8, 1.2 + 0.32 * len(order))
    ax = fig.subplots()
    positions = np.arange(len(order))[::-1]
    ax.barh(positions, gains[order], color="tab:blue")
    ax.set_yticks(positions, [names[i] for i in order], fontsize=9)
    if total > 0:
        for pos, g in zip(positions, gains[order], strict=True):
            ax.text(g, pos, f" {g / total:.1%}", va="center", fontsize=8)
    _style(ax, f"Feature importance (top {len(order)} of {len(names)})", measure, "")
    ax.grid(axis="y", visible=False)
    ax.margins(x=0.12)
    return _save(fig, path, "feature_importance.png")


def shap_summary(
    names: Sequence[str],
    contributions: np.ndarray,
    feature_values: pd.DataFrame,
    path: Path | str,
    top: int = 20,
) -> Path:
    """Beeswarm-like summary of per-row contributions (LightGBM ``pred_contrib``).

    ``contributions`` is n x (k + 1): one column per feature in ``names`` order, then the bias
    column (dropped). Features are ranked by mean |contribution|; each row is a dot at its
    contribution (log-odds), spread vertically by local density, coloured by the rank of the
    feature's value (blue low, red high; grey for missing or non-numeric values). At most
    ``MAX_POINTS_PER_FEATURE`` rows are drawn, sampled with a fixed seed.
    """
    contributions = np.asarray(contributions, dtype=float)
    k = len(names)
    if contributions.ndim != 2 or contributions.shape[1] != k + 1:
        raise ValueError(
            f"contributions must be n x {k + 1} (features then bias), got {contributions.shape}"
        )
    if len(feature_values) != len(contributions):
        raise ValueError(
            f"feature_values has {len(feature_values)} rows, contributions {len(contributions)}"
        )
    missing = [n for n in names if n not in feature_values.columns]
    if missing:
        raise ValueError(f"feature_values lacks columns {missing[:5]}")
    phi = contributions[:, :k]
    mean_abs = np.abs(phi).mean(axis=0)
    order = np.argsort(-mean_abs, kind="stable")[:top]
    rng = np.random.default_rng(0)
    rows = np.arange(len(phi))
    if len(rows) > MAX_POINTS_PER_FEATURE:
        rows = np.sort(rng.choice(rows, MAX_POINTS_PER_FEATURE, replace=False))

    from matplotlib import colormaps

    fig = _figure(9, 1.5 + 0.42 * len(order))
    ax = fig.subplots()
    cmap = colormaps["coolwarm"]
    for pos, j in zip(np.arange(len(order))[::-1], order, strict=True):
        x = phi[rows, j]
        colour_rank = _value_rank(feature_values[names[j]].iloc[rows])
        offsets = _swarm_offsets(x, rng) * 0.38
        colours = np.where(
            np.isnan(colour_rank)[:, None], [[0.6, 0.6, 0.6, 1.0]], cmap(np.nan_to_num(colour_rank))
        )
        ax.scatter(x, pos + offsets, c=colours, s=7, alpha=0.8, linewidths=0, rasterized=True)
    ax.set_yticks(np.arange(len(order))[::-1], [names[j] for j in order], fontsize=9)
    ax.axvline(0, color="grey", lw=1)
    _style(
        ax,
        f"Feature contributions (top {len(order)} by mean |contribution|)",
        "Contribution to the log-odds (LightGBM pred_contrib)",
        "",
    )
    ax.grid(axis="y", visible=False)
    scalar = _scalar_mappable(cmap)
    bar = fig.colorbar(scalar, ax=ax, ticks=[0, 1], fraction=0.04, pad=0.02)
    bar.ax.set_yticklabels(["low", "high"])
    bar.set_label("Feature value (rank)")
    return _save(fig, path, "shap_summary.png")


def _quantile_bins(y: np.ndarray, p: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean predicted probability and observed rate in ``n_bins`` equal-count bins."""
    groups = [g for g in np.array_split(np.argsort(p, kind="stable"), n_bins) if len(g)]
    return np.array([p[g].mean() for g in groups]), np.array([y[g].mean() for g in groups])


def _value_rank(values: pd.Series) -> np.ndarray:
    """Rank of each value scaled to [0, 1] (ties share the lowest rank, so a feature that is
    mostly zero shows its zeros as low); NaN for missing or non-numeric values."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(dtype):
        return np.full(len(values), np.nan)
    ranks = values.astype("Float64").rank(method="min").to_numpy(dtype=float, na_value=np.nan)
    top = np.nanmax(ranks) if np.isfinite(ranks).any() else np.nan
    if not top > 1:
        return np.where(np.isnan(ranks), np.nan, 0.5)
    return (ranks - 1) / (top - 1)


def _swarm_offsets(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Vertical offsets in [-1, 1], wider where many points share nearly the same x."""
    if len(x) == 0:
        return np.zeros(0)
    span = np.ptp(x)
    if span == 0:
        density = np.ones(len(x))
    else:
        counts, edges = np.histogram(x, bins=60)
        idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(counts) - 1)
        density = counts[idx] / counts.max()
    return rng.uniform(-1, 1, len(x)) * density


def _scalar_mappable(cmap):
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    return ScalarMappable(norm=Normalize(0, 1), cmap=cmap)


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _style(ax, title: str, xlabel: str, ylabel: str) -> None:
    if title:
        ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)


def _save(fig: Figure, path: Path | str, default_name: str) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path / default_name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def _labels(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y).astype(float)
    if y.ndim != 1 or len(y) == 0:
        raise ValueError("y must be a non-empty one-dimensional array")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y must hold only 0 and 1")
    if y.min() == y.max():
        raise ValueError("y holds a single class: the curves are undefined")
    return y


def _same_length(a: np.ndarray, y: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if a.shape != y.shape:
        raise ValueError(f"{name} has shape {a.shape}, y has {y.shape}")
    return a
