"""`propensity monitor`: drift, score drift and performance of the served models at a date."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from features.cli_options import DataDir, console, date_option, fail, out, settings_of


def monitor_cmd(
    as_of: Annotated[date | None, date_option(
        "--as-of", help="Snapshot date to monitor (default: the newest).")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the whole result as one JSON object.")] = False,
    html: Annotated[Path | None, typer.Option(
        "--html", help="Write a self-contained HTML report with plots to this file.")] = None,
    log_mlflow: Annotated[bool, typer.Option(
        help="Log the result to MLflow against each model version.")] = True,
    data_dir: DataDir = None,
) -> None:
    """Input drift per feature (overall and per segment) against the champions' training
    window, score drift against it and the previous runs, realised performance of the score
    history's matured runs and estimated performance of the others. Saved under
    <data-dir>/monitoring/ (read by GET /v1/monitoring and /metrics)."""
    import logging

    from features.sources import ContractError
    from serving.monitoring.monitor import MonitorError, monitor_and_save
    from serving.settings import ServingSettings

    settings = settings_of(ServingSettings, data_dir)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:
        with console.status("monitoring") as status:
            result = monitor_and_save(settings, as_of, log_mlflow=log_mlflow,
                                      progress=status.update)
    except MonitorError as exc:
        fail(str(exc))
    except ContractError as exc:
        fail([f"raw data: {p}" for p in exc.problems])
    path = settings.monitoring_dir / f"monitor-{result['as_of']}.json"
    if html is not None:
        from serving.monitoring.report import render

        staging = html.with_name(html.name + ".tmp")
        staging.write_text(render(result), encoding="utf-8")
        staging.replace(html)
    if as_json:
        typer.echo(json.dumps(result))
        return
    _summary(result, path, html)


def _summary(result: dict, path: Path, html: Path | None) -> None:
    from rich.table import Table

    for note in result["notes"]:
        out.print(f"[yellow]note[/yellow]: {note}", highlight=False)
    alerts = [r for r in result["drift"] if r["alert"] or r["segments_alerting"]]
    out.print(f"input drift at {result['as_of']}: {len(alerts)} of {len(result['drift'])} "
              "features on alert (overall or in a segment)")
    for r in sorted(alerts, key=lambda r: -(r["psi"] or 0))[:15]:
        where = ", ".join(r["segments_alerting"]) or "all"
        out.print(f"  {r['feature']} ({r['family']}): PSI {r['psi']:.3f} overall; alert in "
                  f"{where}", highlight=False)
    for r in result["score_drift"]["vs_training"]:
        what = r["task"] + (f" {r['product']}" if r.get("product") else "")
        out.print(f"score drift {what}: PSI {r['psi']:.3f} against the training window "
                  f"({r['level']})")
    if result["performance"]:
        table = Table(title="performance per score run")
        for col in ("as_of", "task", "product", "version", "matured", "ROC AUC", "estimated",
                    "ECE"):
            table.add_column(col, justify="right")
        for r in result["performance"]:
            auc = "–" if r["roc_auc"] is None else (
                f"{r['roc_auc']:.3f} [{r['intervals']['roc_auc'][0]:.3f}, "
                f"{r['intervals']['roc_auc'][1]:.3f}]")
            est = "–" if r["estimated_roc_auc"] is None else (
                f"{r['estimated_roc_auc']:.3f} ± {2 * (r['estimated_roc_auc_sd'] or 0):.3f}")
            table.add_row(r["as_of"], r["task"],
                          r.get("product") or ("all" if r["task"] == "cross-sell" else ""),
                          str(r["model_version"]),
                          "yes" if r["matured"] else "no", auc, est,
                          "–" if r["ece"] is None else f"{r['ece']:.3f}")
        out.print(table)
    for task, d in result["triggers"].items():
        verdict = "retrain" if d["retrain"] else "recalibrate" if d["recalibrate"] else "keep"
        out.print(f"trigger {task}: {verdict}" + (f" ({'; '.join(d['reasons'])})"
                                                   if d["reasons"] else ""), highlight=False)
    out.print(f"saved {path}" + (f"; report {html}" if html else ""))
