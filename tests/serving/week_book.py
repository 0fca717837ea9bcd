"""Two runs a week apart on the shared trained book, with features moved on purpose.

A data directory of its own (the shared book's raw data and MLflow store, read only): the
snapshot of 2025-05-01 copied, and a copy dated 2025-05-08 where three accounts each have one
feature changed (`MOVES`); both scored into the history with `serving.batch.score_duckdb`, the
daily run's writer. Every other account is identical in the two snapshots, so its change is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa

from features.store import FeatureStore
from serving.batch import score_duckdb
from serving.history import history_dir
from serving.settings import ServingSettings

BEFORE, AFTER = date(2025, 5, 1), date(2025, 5, 8)
#: account -> (feature, new value): the churn model's strongest features, set far from the
#: account's own value (a week without product use; a renewal moved out; a renewal due now).
MOVES = {
    "A0000001": ("days_since_last_event", 180),
    "A0000003": ("days_to_renewal", 335),
    "A0000004": ("days_to_renewal", 0),
}


@dataclass(frozen=True)
class WeekBook:
    data_dir: Path
    settings: ServingSettings
    before_values: dict[str, object]  # account -> its moved feature's value on BEFORE


def settings_for(data_dir: Path, served_data: Path, **extra) -> ServingSettings:
    return ServingSettings(data_dir=data_dir, auth_enabled=False,
                           mlflow_tracking_uri=f"sqlite:///{served_data}/mlflow/mlflow.db",
                           **extra)


def copy_snapshot(source: FeatureStore, target: FeatureStore, from_date: date, to_date: date,
                  moves: dict[str, tuple[str, object]] | None = None) -> dict[str, object]:
    """Write the snapshot of ``from_date`` as ``to_date`` with ``moves`` applied; returns the
    moved accounts' values before the move."""
    snapshot, catalogue = source.read_stamped(from_date)
    old = {}
    for account, (feature, value) in (moves or {}).items():
        at = snapshot.index[snapshot["account_id"] == account][0]
        old[account] = snapshot.at[at, feature]
        snapshot.loc[at, feature] = value
    target.write(to_date, pa.Table.from_pandas(snapshot, preserve_index=False), catalogue,
                 source.event_types(from_date))
    return old


def build_week(served_data: Path, root: Path) -> WeekBook:
    data = root / "week-book"
    data.mkdir()
    (data / "raw").symlink_to(served_data / "raw")
    settings = settings_for(data, served_data)
    source, target = FeatureStore(served_data / "features"), FeatureStore(settings.features_dir)
    copy_snapshot(source, target, BEFORE, BEFORE)
    before_values = copy_snapshot(source, target, BEFORE, AFTER, MOVES)
    for as_of in (BEFORE, AFTER):
        score_duckdb(settings, as_of, out=str(history_dir(data)))
    return WeekBook(data, settings, before_values)
