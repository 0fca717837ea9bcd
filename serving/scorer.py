"""The scores of one generation: every account of the newest snapshot scored once, lists and
look-ups served from memory, reasons computed only for the rows that show them.

At load, one vectorised pass per model over the whole snapshot (`serving.scoring`) gives the
scored-account columns; `serving.ranking` orders them into the ranked lists;
`serving.reasons` explains accounts on request (TreeSHAP, ~0.5 ms a row per model) and in a
background warm-up, keeping each (task, account) for the life of the generation. Explicit
feature values from a CRM are scored by the same models (`serving.scoring`).

No FastAPI here: routes translate requests into calls on a `Scorer`.
"""

from __future__ import annotations

import threading
from datetime import date

import numpy as np
import pandas as pd

from features.catalogue import CANDIDATE_PRODUCT
from serving.ranking import Page, Ranking
from serving.reasons import CANDIDATE_DESCRIPTION, SnapshotReasons
from serving.registry import LoadedModel
from serving.scoring import Scoring, snapshot_base, threads


class Scorer:
    """Scores of one snapshot under one set of models; immutable once built (a reload builds
    a new one and swaps it in), except for the reasons filled in as they are asked for."""

    def __init__(self, models: dict[str, LoadedModel], snapshot: pd.DataFrame,
                 book: pd.DataFrame, as_of: date, descriptions: dict[str, str],
                 reasons_per_direction: int = 3, dtypes: dict[str, str] | None = None):
        self.models = models
        self.as_of = as_of
        self.snapshot = snapshot.reset_index(drop=True)
        self.ids = self.snapshot["account_id"].astype(str).to_numpy()
        self.row_of = {a: i for i, a in enumerate(self.ids)}
        self._renewal_days: np.ndarray | None = None
        held = dict(zip(book["account_id"], book["products_held"], strict=True)) if len(
            book) else {}  # a dict: pandas Series.get costs ~10 µs an account
        self.held = [tuple(held.get(a, ())) for a in self.ids]
        self.k = reasons_per_direction
        self.descriptions = {**descriptions, CANDIDATE_PRODUCT: CANDIDATE_DESCRIPTION}
        self.scoring = Scoring(models, dtypes or {}, set().union(*self.held), self.descriptions,
                               self.k)
        x = {task: m.model.matrix(self.snapshot) for task, m in models.items()}
        self.cols = self.scoring.scores(snapshot_base(self.snapshot, self.ids, book), x,
                                        self.held)
        self.table = pd.DataFrame(self.cols)
        self.ranking = Ranking(self.cols, self.ids)
        self.explained = SnapshotReasons(models, x, self.snapshot, self.cols["next_best_product"],
                                         self.scoring.products, self.descriptions, self.k,
                                         threads)

    @property
    def products(self) -> list[str]:
        return self.scoring.products

    @property
    def known_features(self) -> list[str]:
        return self.scoring.known_features

    # --- look-ups ---------------------------------------------------------------------------
    def rows_for(self, account_ids: list[str]) -> list[int | None]:
        return [self.row_of.get(a) for a in account_ids]

    def reasons(self, rows: list[int], tasks: tuple[str, ...], values: bool = True
                ) -> list[dict[str, dict]]:
        """Reasons of snapshot rows per task (`serving.reasons.SnapshotReasons.of`)."""
        return self.explained.of(rows, tasks, values)

    def start_warmup(self, chunk: int = 256) -> threading.Thread:
        """Explain every account in the background, the head of each ranked list first."""
        return self.explained.start_warmup(self.ranking.heads(), chunk)

    def stop_warmup(self) -> None:
        self.explained.stop_warmup()

    def warmed(self) -> float:
        """Share of (task, account) reasons ready."""
        return self.explained.warmed()

    # --- explicit feature values --------------------------------------------------------------
    def check_records(self, records: list[dict], unknown="error") -> list[list[str]]:
        return self.scoring.check_records(records, unknown)

    def check_columns(self, columns: list[str], data: list[list] | None = None,
                      unknown="error") -> list[list[str]]:
        return self.scoring.check_columns(columns, data, unknown)

    def score_records(self, records: list[dict], tasks: tuple[str, ...], with_reasons: bool,
                      max_missing: float | None = None
                      ) -> tuple[dict[str, np.ndarray], list[dict] | None]:
        return self.scoring.score_records(records, tasks, with_reasons, max_missing)

    def score_columns(self, columns: list[str], data: list[list], tasks: tuple[str, ...],
                      with_reasons: bool, max_missing: float | None = None
                      ) -> tuple[dict[str, np.ndarray], list[dict] | None]:
        return self.scoring.score_columns(columns, data, tasks, with_reasons, max_missing)

    # --- ranked lists -----------------------------------------------------------------------
    def page(self, kind: str, owner: str | None, segment: str | None, limit: int,
             cursor: str | None) -> Page:
        return self.ranking.page(kind, owner, segment, limit, cursor)

    def filter_mask(self, owner: str | None, segment: str | None) -> np.ndarray:
        return self.ranking.filter_mask(owner, segment)

    def owners(self) -> list[str]:
        return self.ranking.owners()

    def segments(self) -> list[str]:
        return list(self.ranking.distinct("segment"))

    def versions(self) -> dict[str, str | None]:
        return {task: m.version for task, m in self.models.items()}

    def days_to_renewal(self) -> np.ndarray:
        """Each account's days until its next fixed-term contract ends (the snapshot's
        `days_to_renewal`; NaN where it has none or the snapshot lacks the feature), for the
        page's renewal date column and its sort), taken once per generation."""
        if self._renewal_days is None:
            if "days_to_renewal" not in self.snapshot.columns:
                self._renewal_days = np.full(len(self.ids), np.nan)
            else:
                self._renewal_days = pd.to_numeric(
                    self.snapshot["days_to_renewal"], errors="coerce").to_numpy(
                    dtype="float64", na_value=np.nan)
        return self._renewal_days
