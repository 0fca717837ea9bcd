"""The small generated book the dataset tests share: 150 accounts over 10 months of 2024."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from features.build import build_snapshot
from features.sources import RawTables
from features.store import FeatureStore
from features.validation import load_tables
from simulator.generator import generate


def stored_book(root: Path, dates: list[date]) -> tuple[RawTables, FeatureStore]:
    """Generate the book (seed 11, from 2024-01-01, extracted 2024-11-01) under ``root`` and
    store a snapshot for each of ``dates``."""
    generate(150, 10, 11, date(2024, 1, 1), root / "raw", root / "truth")
    tables = load_tables(root / "raw")
    store = FeatureStore(root / "features")
    for as_of in dates:
        store.write(as_of, build_snapshot(tables, as_of), "test")
    return tables, store
