"""Why a model scored an account as it did: the k strongest contributions raising its
probability and the k strongest lowering it, labelled in plain language.

One rule (`strongest`) serves the API, both batch engines and, as a pinned copy, the model
wrapper (`training/pyfunc_model.top_reasons`, which may not import this project). Snapshot
accounts are explained once per (task, account) and kept compactly (`TopReasons`); a
background thread explains them all after a load (`SnapshotReasons.start_warmup`).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.catalogue import CANDIDATE_PRODUCT
from serving.registry import CROSS_SELL, LoadedModel

DIRECTIONS = ("raising", "lowering")
CANDIDATE_DESCRIPTION = "The product offered"
WARMUP_HEAD = 1000  # rows of each ranked list explained before the rest


@dataclass(frozen=True)
class Reason:
    feature: str
    description: str
    value: object
    contribution: float


def descriptions(catalogue: Iterable) -> dict[str, str]:
    """The labels reasons carry: each catalogue feature's description, and the candidate
    product's (the one model input that is not a catalogue feature)."""
    return {**{f.name: f.description for f in catalogue}, CANDIDATE_PRODUCT: CANDIDATE_DESCRIPTION}


def strongest(contrib: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The reasons rule. Per row of `contrib` (features only, no bias column): the k largest
    positive contributions, largest first, and the k most negative, most negative first;
    ties keep feature order. Returns feature indices (rows, 2, k), -1 where fewer than k
    contributions point that way, and their contributions (0 there)."""
    rows, width = contrib.shape
    idx = np.full((rows, 2, k), -1, dtype=np.int16)
    val = np.zeros((rows, 2, k))
    m = min(k, width)
    if m == 0:
        return idx, val
    up = np.argsort(-contrib, axis=1, kind="stable")[:, :m]
    down = np.argsort(contrib, axis=1, kind="stable")[:, :m]
    up_val = np.take_along_axis(contrib, up, axis=1)
    down_val = np.take_along_axis(contrib, down, axis=1)
    idx[:, 0, :m] = np.where(up_val > 0, up, -1)
    idx[:, 1, :m] = np.where(down_val < 0, down, -1)
    val[:, 0, :m] = np.where(up_val > 0, up_val, 0.0)
    val[:, 1, :m] = np.where(down_val < 0, down_val, 0.0)
    return idx, val


def labelled(features: list[str], idx: np.ndarray, val: np.ndarray,
             value_of: Callable[[str], object], labels: Mapping[str, str]
             ) -> dict[str, list[Reason]]:
    """One row of `strongest` as {"raising": [Reason...], "lowering": [...]}."""
    return {direction: [reason(features[j], v, value_of(features[j]), labels)
                        for j, v in zip(idx[d], val[d], strict=True) if j >= 0]
            for d, direction in enumerate(DIRECTIONS)}


def reason(feature: str, contribution: float, value: object, labels: Mapping[str, str]
           ) -> Reason:
    return Reason(feature, labels.get(feature, feature), value, round(float(contribution), 4))


def as_dicts(reasons: dict[str, list[Reason]], with_value: bool = True) -> dict:
    """Reasons as JSON-ready dicts (the API's; batch files leave out the value)."""
    keys = ("feature", "description", "value", "contribution") if with_value else (
        "feature", "description", "contribution")
    return {direction: [{key: getattr(r, key) for key in keys} for r in found]
            for direction, found in reasons.items()}  # not asdict: it deep-copies


def explain(model, x: np.ndarray, k: int, value_of: Callable[[int, str], object],
            labels: Mapping[str, str], threads: int = 1) -> list[dict[str, list[Reason]]]:
    """Reasons of each row of an encoded matrix; `value_of(i, feature)` is row i's value."""
    contrib = model.contributions_matrix(x, threads)[:, : len(model.features)]
    idx, val = strongest(contrib, k)
    return [labelled(model.features, idx[i], val[i], lambda f, i=i: value_of(i, f), labels)
            for i in range(len(x))]


class TopReasons:
    """`strongest` of every snapshot row of one model: feature indices and values, ~50 bytes
    a row instead of ~2 KB of objects, so every account of a 100,000-account book fits
    (~5 MB a model)."""

    def __init__(self, rows: int, k: int):
        self.k = k
        self.idx = np.full((rows, 2, k), -1, dtype=np.int16)
        self.val = np.zeros((rows, 2, k), dtype="float64")
        self.done = np.zeros(rows, dtype=bool)

    def fill(self, rows: list[int], contrib: np.ndarray) -> None:
        """Store rows' reasons from their contributions (features only, bias column dropped)."""
        self.idx[rows], self.val[rows] = strongest(contrib, self.k)
        self.done[rows] = True  # after the values: a reader never sees half a row


class SnapshotReasons:
    """Reasons of the accounts of one snapshot, per task: each (task, row) explained once,
    on request or by the warm-up thread, then kept for the life of the generation.

    Cross-sell explains the product offered (`offered[row]`); a row offered nothing has
    nothing to explain."""

    def __init__(self, models: dict[str, LoadedModel], matrices: dict[str, np.ndarray],
                 snapshot: pd.DataFrame, offered: np.ndarray, products: list[str],
                 labels: Mapping[str, str], k: int, threads: Callable[[int], int]):
        self.models = models
        self.matrices = matrices
        self.snapshot = snapshot
        self.offered = offered
        self.products = products
        self.labels = labels
        self.k = k
        self.threads = threads
        self.top = {task: TopReasons(len(snapshot), k) for task in models}
        self._masks: dict[str, np.ndarray] = {}
        self._plain_values: dict[str, np.ndarray] = {}  # feature -> JSON-ready values
        self._stop = threading.Event()

    def of(self, rows: list[int], tasks: Iterable[str], values: bool = True
           ) -> list[dict[str, dict | None]]:
        """Reasons of snapshot rows per task (None where cross-sell offers nothing); without
        `values` the account's values are left out (None), as batch files do."""
        out: list[dict[str, dict | None]] = [{} for _ in rows]
        for task in tasks:
            if task not in self.models:
                continue
            mask = self.explainable(task)
            self.fill(task, sorted({r for r in rows if mask[r] and not self.top[task].done[r]}))
            for i, r in enumerate(rows):
                out[i][task] = self._stored(task, r, values) if mask[r] else None
        return out

    def explainable(self, task: str) -> np.ndarray:
        if task not in self._masks:
            self._masks[task] = (
                np.array([p is not None for p in self.offered], dtype=bool)
                if task == CROSS_SELL else np.ones(len(self.snapshot), dtype=bool))
        return self._masks[task]

    def fill(self, task: str, rows: list[int]) -> None:
        if rows:
            model = self.models[task].model
            x = self.matrices[task][rows]
            if task == CROSS_SELL:
                x = with_products(model, x, self.offered[rows], self.products)
            contrib = model.contributions_matrix(x, self.threads(len(rows)))
            self.top[task].fill(rows, contrib[:, : len(model.features)])

    def _stored(self, task: str, row: int, values: bool = True) -> dict[str, list[Reason]]:
        top = self.top[task]
        return labelled(self.models[task].model.features, top.idx[row], top.val[row],
                        (lambda feature: self.value(row, feature)) if values else _none,
                        self.labels)

    def value(self, row: int, feature: str) -> object:
        """The account's value of a feature, as the API shows it beside the reason."""
        if feature == CANDIDATE_PRODUCT:
            return self.offered[row]
        values = self._plain_values.get(feature)
        if values is None:  # once per feature: pandas look-ups cost ~10 us each
            if feature not in self.snapshot.columns:  # scored as missing (an older snapshot)
                values = np.full(len(self.snapshot), None, dtype=object)
            else:
                column = self.snapshot[feature]
                values = column.astype(object).where(column.notna(), None).to_numpy()
            self._plain_values[feature] = values
        return values[row]

    # --- warm-up: every account's reasons, in the background, at the lowest priority --------
    def start_warmup(self, heads: list[np.ndarray], chunk: int = 256) -> threading.Thread:
        """Explain every account in a background thread (the `heads` of the ranked lists
        first: what the page and CRMs ask for), so that look-ups find their reasons ready.
        The thread runs at nice 19 and one LightGBM thread: requests keep the cores."""
        thread = threading.Thread(target=self._warm, args=(heads, chunk),
                                  name="reasons-warmup", daemon=True)
        thread.start()
        return thread

    def stop_warmup(self) -> None:
        self._stop.set()

    def _warm(self, heads: list[np.ndarray], chunk: int) -> None:
        _lowest_priority()
        n = len(self.snapshot)
        sequence = np.concatenate([*[h[:WARMUP_HEAD] for h in heads], np.arange(n)]) if n else []
        for task in self.models:
            explainable = self.explainable(task)
            todo = [int(r) for r in dict.fromkeys(sequence) if explainable[r]]
            for start in range(0, len(todo), chunk):
                if self._stop.is_set():
                    return
                self.fill(task, [r for r in todo[start: start + chunk]
                                 if not self.top[task].done[r]])

    def warmed(self) -> float:
        """Share of (task, account) reasons ready."""
        done = wanted = 0
        for task, top in self.top.items():
            mask = self.explainable(task)
            done, wanted = done + int(top.done[mask].sum()), wanted + int(mask.sum())
        return done / wanted if wanted else 1.0


def with_products(model, x: np.ndarray, products: np.ndarray, levels: list[str]) -> np.ndarray:
    """A copy of the cross-sell matrix `x` with each row's candidate set to its product
    (missing where the product is None or unknown)."""
    j = model.features.index(CANDIDATE_PRODUCT)
    x = x.copy()
    x[:, j] = [levels.index(p) if p in levels else np.nan for p in products]
    return x


def _none(_feature: str) -> None:
    return None


def plain(value: object) -> object:
    """A JSON-friendly scalar: numpy numbers to Python, NaN/NA to None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _lowest_priority() -> None:
    """Nice 19 for the calling thread (Linux schedules threads on their own)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
