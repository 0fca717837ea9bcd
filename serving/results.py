"""Scores as JSON-ready dicts and CSV: the one place response items are shaped.

Items are built straight from the scorer's numpy columns (no pydantic per item, no pandas):
a 10,000-account answer is shaped in milliseconds. NaN becomes null.
"""

from __future__ import annotations

import csv
import io
import math

import numpy as np

from features.csv_safe import safe_row
from serving.phrasing import with_texts
from serving.reasons import DIRECTIONS, as_dicts
from serving.row import NAMES, NUMBERS, PROBABILITIES, TEXT
from serving.valuation import PLAYS

CSV_COLUMNS = ("rank", "list_rank", *NAMES, "reasons", "reasons_text")
CSV_VERBS = {"raising": "raises", "lowering": "lowers"}


def item(cols: dict[str, np.ndarray], i: int, reasons: dict | None = None,
         rank: int | None = None, list_rank: int | None = None) -> dict:
    """One account's response item from row ``i`` of the scorer's columns."""
    out: dict = {c: cols[c][i] for c in TEXT}
    for c in NUMBERS:
        v = float(cols[c][i])
        out[c] = None if math.isnan(v) else (round(v, 6) if c in PROBABILITIES else v)
    out["play_detail"] = PLAYS.get(out["play"]) if out["play"] else None
    out["error"] = None
    if reasons is not None:
        out["reasons"] = {task: with_texts(as_dicts(r), task) for task, r in reasons.items()
                          if r is not None}
    if rank is not None:
        out["rank"] = rank
    if list_rank is not None:
        out["list_rank"] = list_rank
    return out


def items(cols: dict[str, np.ndarray], rows: list[int],
          reasons: list[dict | None] | None = None) -> list[dict]:
    """`item` for many rows at once, the same dicts: each column is taken once and turned into
    Python values with `tolist` (numpy scalars per cell cost ~5x more on 1,000 rows)."""
    take = np.asarray(rows, dtype=np.intp)
    text = [(c, cols[c][take].tolist()) for c in TEXT]
    numbers = [(c, np.asarray(cols[c][take], dtype="float64").tolist(), c in PROBABILITIES)
               for c in NUMBERS]
    out = []
    for k in range(len(rows)):
        one: dict = {c: values[k] for c, values in text}
        for c, values, rounded in numbers:
            v = values[k]
            one[c] = None if math.isnan(v) else (round(v, 6) if rounded else v)
        one["play_detail"] = PLAYS.get(one["play"]) if one["play"] else None
        one["error"] = None
        if reasons is not None and reasons[k] is not None:
            one["reasons"] = {task: with_texts(as_dicts(r), task)
                              for task, r in reasons[k].items() if r is not None}
        out.append(one)
    return out


def input_notes(out: list[dict], cols: dict[str, np.ndarray], warnings: list[list[str]]
                ) -> list[dict]:
    """Items scored from explicit features say how complete their input was (and what was
    scored as missing), so a confident answer from an empty record cannot pass unnoticed."""
    count = cols["missing_features"].tolist()
    share = cols["missing_importance"].tolist()
    for k, one in enumerate(out):
        one["missing_features"] = count[k]
        one["missing_importance"] = round(share[k], 4)
        one["missing_important"] = cols["missing_important"][k]
        if warnings[k]:
            one["warnings"] = warnings[k]
    return out


def error_item(account_id: str, message: str) -> dict:
    return {"account_id": account_id, "error": message}


def to_csv(items: list[dict], reasons_task: str) -> str:
    """Ranked items as CSV; reasons flattened to "feature (+0.42); ..." for spreadsheets and,
    in `reasons_text`, to the sentences the page shows ("raises: friction: opened 29 support
    tickets in the last 90 days; lowers: ..."); text cells that a spreadsheet would run as a
    formula neutralised (`features.csv_safe`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in items:
        flat = dict(row)
        reasons = (row.get("reasons") or {}).get(reasons_task) or {}
        flat["reasons"] = "; ".join(
            f"{r['feature']} ({r['contribution']:+.2f})"
            for direction in DIRECTIONS for r in reasons.get(direction, [])
        )
        flat["reasons_text"] = "; ".join(
            f"{CSV_VERBS[direction]}: {r['text']}"
            for direction in DIRECTIONS for r in reasons.get(direction, [])
        )
        writer.writerow(safe_row(flat))
    return buffer.getvalue()
