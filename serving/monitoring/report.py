"""The monitor's HTML report: one self-contained file (figures as inline PNG, no scripts, no
links out) that a data scientist opens from a mail or a CI artifact.

Figures use matplotlib's object API on an Agg canvas (no pyplot state), like training's plots.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import date

TOP_FEATURES = 25
COLORS = {"ok": "#7aa6c2", "watch": "#e0a030", "alert": "#c0392b", "source missing": "#555555"}


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return ("<img alt='figure' src='data:image/png;base64,"
            + base64.b64encode(buffer.getvalue()).decode() + "'>")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def psi_bars(result: dict) -> str:
    """The features of largest PSI (overall), coloured by level, with the thresholds."""
    rows = sorted(result["drift"], key=lambda r: r["psi"] or 0, reverse=True)[:TOP_FEATURES]
    fig = _figure(9, 0.28 * len(rows) + 1.2)
    ax = fig.subplots()
    ax.barh([r["feature"] for r in rows][::-1], [r["psi"] or 0 for r in rows][::-1],
            color=[COLORS.get(r["level"], "#999") for r in rows][::-1])
    for name, value in (("watch", result["thresholds"]["psi_watch"]),
                        ("alert", result["thresholds"]["psi_alert"])):
        ax.axvline(value, ls="--", lw=1, color=COLORS[name], label=f"{name} {value:g}")
    ax.set_xlabel("PSI against the training window (all accounts)")
    ax.legend(loc="lower right")
    return _png(fig)


def pooled(rows: list[dict]) -> list[dict]:
    """A task's rows over all accounts (cross-sell: pooled over products)."""
    return [r for r in rows if r.get("product") is None]


def performance_over_time(result: dict) -> str:
    """Per task: realised ROC AUC (with its interval) and the label-free estimate per run."""
    tasks = sorted({r["task"] for r in result["performance"]})
    fig = _figure(9, 3.2 * max(len(tasks), 1))
    axes = fig.subplots(max(len(tasks), 1), 1, squeeze=False)[:, 0]
    for ax, task in zip(axes, tasks, strict=False):
        rows = [r for r in pooled(result["performance"]) if r["task"] == task]
        days = [date.fromisoformat(r["as_of"]) for r in rows]
        est = [r["estimated_roc_auc"] for r in rows]
        sd = [r["estimated_roc_auc_sd"] or 0 for r in rows]
        ax.errorbar(days, est, yerr=[2 * s for s in sd], fmt="o--", capsize=3,
                    label="estimated (CBPE) ± 2 sd")
        done = [r for r in rows if r.get("roc_auc") is not None]
        if done:
            low = [r["roc_auc"] - r["intervals"]["roc_auc"][0] for r in done]
            high = [r["intervals"]["roc_auc"][1] - r["roc_auc"] for r in done]
            ax.errorbar([date.fromisoformat(r["as_of"]) for r in done],
                        [r["roc_auc"] for r in done], yerr=[low, high], fmt="s-", capsize=3,
                        label="realised (95% bootstrap)")
        test_auc = (result["models"].get(task) or {}).get("test_metrics", {}).get("roc_auc")
        if test_auc is not None:
            ax.axhline(test_auc, color="grey", lw=1, ls=":", label=f"test AUC {test_auc:.3f}")
        ax.set_title(f"{task}: ROC AUC per score run"
                     + (" (pooled over products)" if task == "cross-sell" else ""))
        ax.legend(loc="lower left", fontsize=8)
    fig.autofmt_xdate()
    return _png(fig)


def calibration_curves(result: dict) -> str | None:
    """Observed rate against mean probability per bin, for each matured run and task."""
    rows = [r for r in pooled(result["performance"]) if r.get("calibration_curve")]
    if not rows:
        return None
    tasks = sorted({r["task"] for r in rows})
    fig = _figure(5 * len(tasks), 4.6)
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=True):
        for r in (r for r in rows if r["task"] == task):
            curve = r["calibration_curve"]
            ax.plot([c["mean_probability"] for c in curve], [c["observed_rate"] for c in curve],
                    "o-", ms=3, label=f"{r['as_of']} (ECE {r['ece']:.3f})")
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
        ax.set_xlabel("mean predicted probability")
        ax.set_ylabel("observed rate")
        ax.set_title(f"{task}: calibration of matured runs")
        ax.legend(fontsize=7)
    return _png(fig)


def cross_sell_products(result: dict) -> str | None:
    """Cross-sell per product: realised (solid) and estimated (dashed) ROC AUC per run, and
    the calibration of the newest matured run's pairs of each product."""
    rows = [r for r in result["performance"]
            if r["task"] == "cross-sell" and r.get("product") is not None]
    if not rows:
        return None
    fig = _figure(11, 4.2)
    over_time, calibration = fig.subplots(1, 2)
    for i, product in enumerate(sorted({r["product"] for r in rows})):
        mine = [r for r in rows if r["product"] == product]
        color = f"C{i}"
        est = [r for r in mine if r.get("estimated_roc_auc") is not None]
        over_time.plot([date.fromisoformat(r["as_of"]) for r in est],
                       [r["estimated_roc_auc"] for r in est], "o--", color=color,
                       label=f"{product} estimated")
        done = [r for r in mine if r.get("roc_auc") is not None]
        if done:
            over_time.plot([date.fromisoformat(r["as_of"]) for r in done],
                           [r["roc_auc"] for r in done], "s-", color=color,
                           label=f"{product} realised")
            curve = done[-1].get("calibration_curve") or []
            calibration.plot([c["mean_probability"] for c in curve],
                             [c["observed_rate"] for c in curve], "o-", ms=3, color=color,
                             label=f"{product} {done[-1]['as_of']} (ECE {done[-1]['ece']:.3f})")
    over_time.set_title("cross-sell: ROC AUC per product and run")
    over_time.legend(fontsize=7)
    for label in over_time.get_xticklabels():
        label.set_rotation(30)
    top = max([c["mean_probability"] for r in rows for c in r.get("calibration_curve") or []]
              + [c["observed_rate"] for r in rows for c in r.get("calibration_curve") or []]
              + [0.05])
    calibration.plot([0, top], [0, top], ls="--", color="grey", lw=1)
    calibration.set_xlabel("mean predicted probability")
    calibration.set_ylabel("observed adoption rate")
    calibration.set_title("cross-sell: calibration of the newest matured run")
    if calibration.get_legend_handles_labels()[0]:
        calibration.legend(fontsize=7)
    return _png(fig)


def _table(rows: list[dict], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in columns) + "</tr>"
        for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def render(result: dict) -> str:
    """The whole report as one HTML document."""
    alerts = [r for r in result["drift"] if r["alert"] or r["segments_alerting"]]
    parts = [
        f"<h1>propensity monitor: {html.escape(result['as_of'])}</h1>",
        "<p>Models: " + ", ".join(
            f"{html.escape(t)} v{html.escape(str(m['version']))}"
            for t, m in result["models"].items())
        + f"; training window {html.escape(', '.join(result['training_window']))}.</p>",
    ]
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in result["notes"]]
    parts += ["<h2>Input drift</h2>",
              f"<p>{len(alerts)} feature(s) on alert overall or in a segment.</p>",
              psi_bars(result)]
    if alerts:
        parts.append(_table(alerts, ["feature", "family", "psi", "level", "segments_alerting",
                                     "importance", "null_share", "outside_range_share"]))
    parts += ["<h2>Score drift</h2>",
              _table(result["score_drift"]["vs_training"],
                     ["task", "product", "psi", "level", "mean_reference", "mean"]),
              "<h3>Risk tiers (share of accounts)</h3>",
              _table(result["score_drift"]["risk_tiers"], ["as_of", "high", "medium", "low"])]
    offers = result["score_drift"].get("cross_sell_offers")
    if offers:
        parts += ["<h3>Cross-sell offers (share of accounts whose next best product is likely "
                  "enough for a play, unlikely, or none: every product held)</h3>",
                  _table(offers, ["as_of", "likely", "unlikely", "none"])]
    parts += ["<h2>Performance</h2>", performance_over_time(result) if result["performance"]
              else "<p>No score history yet.</p>"]
    curves = calibration_curves(result)
    if curves:
        parts.append(curves)
    products = cross_sell_products(result)
    if products:
        parts += ["<h3>Cross-sell per product</h3>", products]
    if result["performance"]:
        parts.append(_table(result["performance"],
                            ["as_of", "task", "product", "model_version", "matured", "accounts",
                             "pairs", "roc_auc",
                             "estimated_roc_auc", "estimated_roc_auc_sd", "lift_at_10", "ece",
                             "expected_ece", "revenue_capture_at_10"]))
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
             "th{background:#f2f2f2}.note{background:#fff6d6;padding:.5em}img{max-width:100%}")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>propensity monitor "
            f"{html.escape(result['as_of'])}</title><style>{style}</style></head><body>"
            + "\n".join(parts) + "</body></html>")
