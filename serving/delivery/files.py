"""Each run's bulk files for a CRM import: every account, and the changed ones only.

``<delivery_dir>/files/as_of=YYYY-MM-DD/`` holds ``scores.parquet`` / ``scores.csv`` (every
scored account) and ``changed.parquet`` / ``changed.csv`` (the changed ones, with their previous
values), plus ``_delivery.json`` (the runs compared, the threshold, the models). The folder is
published whole by one rename (:func:`features.store.replace_dir_atomic`): an import reads the
old run's files or the new run's, never a mix or half a file.

The Parquet files keep the history's types and its reasons as JSON; the CSV files are for
people and spreadsheets: reasons in plain language ("Seats used, share (+0.42); ..."), and every
text cell formula-safe (:mod:`features.csv_safe`).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import csv

from features.csv_safe import safe_cell
from features.store import replace_dir_atomic
from serving.batch import OUTPUT_SCHEMA
from serving.reasons import DIRECTIONS
from serving.row import REASON_COLUMNS

FILES = "files"
FULL, CHANGED = "scores", "changed"
NOTE = "_delivery.json"
EXTERNAL_ID = "external_id"
#: Types of the columns a delivered file adds to the history's (OUTPUT_SCHEMA).
ADDED_TYPES = {
    EXTERNAL_ID: pa.string(), "previous_as_of": pa.date32(),
    "previous_churn_probability": pa.float64(), "churn_change": pa.float64(),
    "previous_upsell_probability": pa.float64(), "upsell_change": pa.float64(),
    "previous_risk_tier": pa.string(), "changes": pa.string(),
}


def files_folder(delivery_dir: Path, as_of: date) -> Path:
    return Path(delivery_dir) / FILES / f"as_of={as_of:%Y-%m-%d}"


def write_files(folder: Path, full: pd.DataFrame, changed: pd.DataFrame, note: dict) -> Path:
    """Publish the run's four files and its note in ``folder``, all or nothing."""
    def fill(staging: Path) -> None:
        for stem, frame in ((FULL, full), (CHANGED, changed)):
            table = arrow_table(frame)
            pq.write_table(table, staging / f"{stem}.parquet")
            csv.write_csv(csv_table(table), staging / f"{stem}.csv",
                          csv.WriteOptions(quoting_style="needed"))
        (staging / NOTE).write_text(json.dumps(note, indent=2, default=str), encoding="utf-8")

    return replace_dir_atomic(folder, fill)


def arrow_table(frame: pd.DataFrame) -> pa.Table:
    """The frame with the history's types (and the added columns' types), in its column order."""
    schema = pa.schema([
        pa.field(c, OUTPUT_SCHEMA.field(c).type if c in OUTPUT_SCHEMA.names else ADDED_TYPES[c])
        for c in frame.columns])
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def csv_table(table: pa.Table) -> pa.Table:
    """The table as spreadsheet cells: reasons as plain text, text cells formula-safe."""
    reasons = set(REASON_COLUMNS.values())
    for i, field in enumerate(table.schema):
        if field.type != pa.string():
            continue
        cells = table.column(i).to_pylist()
        if field.name in reasons:
            cells = [plain_reasons(c) for c in cells]
        table = table.set_column(i, field.name, pa.array([safe_cell(c) for c in cells],
                                                         pa.string()))
    return table


def plain_reasons(cell: str | None) -> str | None:
    """A reasons JSON cell as "description (+0.42); ..." (raising first); None stays None."""
    if cell is None:
        return None
    found = orjson.loads(cell)
    return "; ".join(f"{r.get('description') or r['feature']} ({r['contribution']:+.2f})"
                     for direction in DIRECTIONS for r in found.get(direction, []))
