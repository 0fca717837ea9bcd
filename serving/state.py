"""What the service serves: one immutable generation (models + newest snapshot + scores +
KPIs), and the holder that swaps generations atomically on reload.

A request takes `holder.current` once and works on that object to the end, so a reload that
swaps in a new generation mid-request never mixes the two, and none fails. A reload that
cannot load keeps the old generation and records why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from serving.changes import ChangeCache
from serving.kpi_strip import kpi_parts, strip
from serving.reasons import descriptions
from serving.registry import REQUIRED_TASKS, TrackingStoreError, load_models
from serving.scorer import Scorer
from serving.settings import ServingSettings
from serving.snapshot_check import Problem, SnapshotRefused, check_accounts_drop, table_name

log = logging.getLogger(__name__)


class LoadError(RuntimeError):
    """The service cannot build a generation (no champion, no snapshot, bad raw data);
    ``missing`` names the tasks without a model, and why."""

    def __init__(self, message: str, missing: dict[str, str] | None = None):
        super().__init__(message)
        self.missing = dict(missing or {})


@dataclass(frozen=True)
class Generation:
    scorer: Scorer
    missing: dict[str, str]  # task -> why its model is not loaded
    kpis: dict = field(default_factory=dict)  # the page's KPI strip, whole book
    kpi_parts: pd.DataFrame | None = None  # its parts per owner and segment (serving.kpi_strip)
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    load_seconds: float = 0.0
    changes: ChangeCache = field(default_factory=ChangeCache)  # what changed, per run pair


Loader = Callable[[ServingSettings], Generation]


def load_generation(settings: ServingSettings) -> Generation:
    """Champions from the registry (or settings' URIs), the newest snapshot, the book of
    accounts at that date, every account scored, and the KPI strip."""
    from features.book import account_book
    from features.build import feature_groups
    from features.catalogue import all_features
    from features.event_types import stored_spec
    from features.sources import ContractError
    from features.store import FeatureStore
    from features.validation import load_tables
    from serving.snapshot_check import check_snapshot

    started = time.perf_counter()
    try:
        models, missing = load_models(settings.tracking_uri, settings.model_uris)
    except TrackingStoreError as exc:  # no store: no model of any task
        raise LoadError(str(exc), {t: f"{t}: no model ({exc.reason}): train one with "
                                   f"`propensity train {t}`" for t in REQUIRED_TASKS}) from exc
    absent = [t for t in REQUIRED_TASKS if t not in models]
    if absent:
        raise LoadError("; ".join(missing[t] for t in absent), missing)
    store = FeatureStore(settings.features_dir)
    dates = store.dates()
    if not dates:
        raise LoadError(f"no feature snapshot in {store.root}: run `propensity features build`")
    as_of = dates[-1]
    snapshot, stamped = store.read_stamped(as_of)
    problems = check_snapshot(as_of, snapshot, stamped, {
        task: (getattr(m.model, "schema", {}), m.meta.get("catalogue_version"))
        for task, m in models.items()})
    if problems:
        raise SnapshotRefused(problems)
    try:
        tables = load_tables(settings.raw_dir)
    except ContractError as exc:
        raise LoadError(f"raw data in {settings.raw_dir} break the contract: {exc}") from exc
    book = account_book(tables, as_of)
    catalogue = all_features(feature_groups(stored_spec(settings, store, as_of)))
    scorer = Scorer(models, snapshot, book, as_of, descriptions(catalogue),
                    settings.reasons_per_direction,
                    dtypes={f.name: f.dtype for f in catalogue})
    parts = kpi_parts(tables, as_of, settings.gross_margin)
    seconds = time.perf_counter() - started
    log.info("loaded %d accounts of %s with models %s in %.1f s", len(scorer.ids), as_of,
             scorer.versions(), seconds)
    return Generation(scorer=scorer, missing=missing, kpis=strip(parts), kpi_parts=parts,
                      load_seconds=seconds)


class StateHolder:
    """The current generation, swapped atomically; at most one reload at a time."""

    def __init__(self, settings: ServingSettings, loader: Loader = load_generation,
                 warm_reasons: bool = True):
        self.settings = settings
        self.loader = loader
        self.warm_reasons = warm_reasons  # explain every account in the background
        self.current: Generation | None = None
        self.last_error: str | None = None
        self.last_problems: list[Problem] = []  # the rules the last refused snapshot broke
        self.last_missing: dict[str, str] = {}  # task -> why, when the last load had no model
        self._reloading = threading.Lock()

    def reload(self, force: bool = False) -> tuple[bool, str | None]:
        """Build a new generation and swap it in; on failure keep the old one.

        ``force`` lets a snapshot with far fewer accounts than the serving one through (the
        other snapshot rules always hold)."""
        with self._reloading:
            try:
                generation = self.loader(self.settings)
                self._check_drop(generation, force)
            except Exception as exc:  # whatever failed, the old generation keeps serving
                self._failed(exc)
                return False, self.last_error
            previous, self.current = self.current, generation  # atomic for readers
            self.last_error, self.last_problems, self.last_missing = None, [], {}
            if previous is not None:
                previous.scorer.stop_warmup()
            if self.warm_reasons:
                generation.scorer.start_warmup()
            return True, None

    @property
    def refused(self) -> bool:
        """The last reload failed because the snapshot broke a rule (not because of a fault)."""
        return bool(self.last_problems)

    def _check_drop(self, generation: Generation, force: bool) -> None:
        if self.current is None:
            return
        scorer = generation.scorer
        problems = check_accounts_drop(table_name(scorer.as_of), len(scorer.ids),
                                       len(self.current.scorer.ids),
                                       self.settings.reload_max_account_drop, force)
        if problems:
            raise SnapshotRefused(problems)

    def _failed(self, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.last_problems = list(getattr(exc, "problems", []))
        self.last_missing = dict(getattr(exc, "missing", {}))
        if self.current is None:
            log.error("load failed, nothing is served yet: %s", self.last_error)
        else:
            log.error("reload failed, still serving the previous generation: %s",
                      self.last_error)
