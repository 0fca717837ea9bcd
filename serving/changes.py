"""What changed between two runs of the score history, and why.

Two runs of the history (:mod:`serving.history`): by default the newest and the newest one at
least a week before it (:func:`pick_runs`). Per account present in both: the change in churn
and upsell probability and in ARR at risk, as each run stored them, and the attribution of the
change in one model's raw score (log-odds) to its features: the model's own contributions
(TreeSHAP for trees) of the *same* model version on the two stored feature snapshots, so that
``contributions(after) - contributions(before)`` summed over the features is exactly
``raw(after) - raw(before)`` (the bias cancels). When the two runs were scored by different
versions, the newer run's model explains both snapshots and the change says so.

Ranking (``GET /v1/changes``): each account's *weighted change* is the change in the kind's
probability times the account's ARR in the newer run (missing ARR counts as 0). Risers
(weighted change > 0) come first, largest first; then fallers (< 0), largest drop first; then
unchanged accounts; ties by account_id. Probabilities rank the list cheaply; contributions are
computed only for the accounts a page shows (then kept), so a page costs a few rows of TreeSHAP.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property

import numpy as np
import orjson
import pandas as pd

from serving import scoring
from serving.history import ScoreHistory
from serving.ranking import UNASSIGNED
from serving.reasons import plain
from serving.registry import LoadedModel

WEEK = timedelta(days=7)
PROBABILITY = {"churn": "churn_probability", "upsell": "upsell_probability"}
CHANGE_KINDS = tuple(PROBABILITY)
DRIVERS = 5  # features shown per account: the largest contributions to the change
RUN_COLUMNS = ("account_id", "name", "owner", "segment", "arr", "churn_probability",
               "upsell_probability", "arr_at_risk", "expected_expansion", "play")
CACHED_SETS = 8  # (runs, task, model version) change sets kept per generation


class ChangesError(Exception):
    """The change cannot be computed (no history, one run, an unknown date); ``status`` is the
    HTTP status, ``code`` a short code, the message says what to do."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ChangeCursorError(ValueError):
    """A pagination cursor this change list did not issue."""


@dataclass(frozen=True)
class Runs:
    before: date
    after: date


def pick_runs(dates: list[date], since: date | None = None) -> Runs:
    """The two runs to compare: the newest, and ``since`` (which must be a run before it) or
    else the newest run at least 7 days before the newest (or, when every run is closer than
    that, the oldest one)."""
    if not dates:
        raise ChangesError(404, "no_history", "the score history is empty: run `propensity run` "
                           "(twice, a week apart) to record scores")
    if len(dates) < 2:
        raise ChangesError(404, "one_run", f"the score history has one run ({dates[0]}): a "
                           "change needs two; run `propensity run` again on a later date")
    after = dates[-1]
    if since is not None:
        if since not in dates or since >= after:
            earlier = ", ".join(str(d) for d in dates[:-1][-10:])
            raise ChangesError(422, "unknown_since", f"since={since} is not a run before the "
                               f"newest ({after}); runs: {earlier}")
        return Runs(since, after)
    week_ago = [d for d in dates if d <= after - WEEK]
    return Runs(week_ago[-1] if week_ago else dates[0], after)


def attribution(model: LoadedModel, before: np.ndarray, after: np.ndarray, threads: int = 1
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of two encoded matrices (the same accounts, the same model): the features'
    contributions to the change (after - before, one column per feature, bias excluded) and
    the raw scores (log-odds) before and after. The columns sum to ``after - before``."""
    c_before = model.model.contributions_matrix(before, threads)
    c_after = model.model.contributions_matrix(after, threads)
    width = len(model.features)
    return (c_after[:, :width] - c_before[:, :width], c_before.sum(axis=1),
            c_after.sum(axis=1))


def shown(value: object) -> str:
    """A feature value in a driver's sentence: 412 -> "412", 0.2857 -> "0.29", None -> "none"."""
    value = plain(value)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value.is_integer():
            return f"{value:,.0f}"
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


class ChangeSet:
    """One comparison: the accounts present in both runs, ranked for one kind, with the
    newer run's model explaining the change of each account on demand (then kept)."""

    def __init__(self, kind: str, runs: Runs, joined: pd.DataFrame, model: LoadedModel,
                 versions: tuple[str | None, str | None], snapshots: tuple[pd.DataFrame,
                                                                          pd.DataFrame],
                 labels: dict[str, str]):
        self.kind, self.runs, self.model, self.labels = kind, runs, model, labels
        self.previous_version, self.version = versions
        self.model_changed = self.previous_version != self.version
        probability = PROBABILITY[kind]
        change = joined[probability] - joined[f"previous_{probability}"]
        weighted = change * joined["arr"].fillna(0.0)
        group = np.where(weighted > 0, 0, np.where(weighted < 0, 1, 2))
        joined = joined.assign(change=change, weighted_change=weighted, _group=group,
                               _size=-weighted.abs())
        self.table = joined.sort_values(["_group", "_size", "account_id"],
                                        ignore_index=True).drop(columns=["_group", "_size"])
        self.ids = self.table["account_id"].to_numpy(dtype=str)
        self.row_of = {a: i for i, a in enumerate(self.ids)}
        self.features = model.features
        before, after = (s.set_index("account_id").reindex(self.ids).reset_index()
                         for s in snapshots)
        self.snapshots = (before, after)
        self.x = (model.model.matrix(before), model.model.matrix(after))
        # which of the model's inputs changed, as the model sees them (two missing: unchanged)
        self.changed = ~((self.x[0] == self.x[1]) | (np.isnan(self.x[0]) & np.isnan(self.x[1])))
        self._values: dict[tuple[int, str], np.ndarray] = {}  # (snapshot, feature) -> values
        self._drivers: dict[tuple[int, int], list[dict]] = {}  # (row, n) -> drivers
        self.contrib = np.zeros((len(self.ids), len(self.features)))
        self.raw = np.zeros((len(self.ids), 2))
        self.done = np.zeros(len(self.ids), dtype=bool)
        self._lock = threading.Lock()

    # --- attribution, on demand ---------------------------------------------------------------
    def explain(self, rows: list[int]) -> None:
        """Compute (once) the attribution of the given rows."""
        with self._lock:
            todo = sorted({r for r in rows if not self.done[r]})
            if todo:
                contrib, raw_before, raw_after = attribution(
                    self.model, self.x[0][todo], self.x[1][todo], scoring.threads(len(todo)))
                self.contrib[todo] = contrib
                self.raw[todo, 0], self.raw[todo, 1] = raw_before, raw_after
                self.done[todo] = True

    def drivers(self, row: int, n: int = DRIVERS) -> list[dict]:
        """The changed features that moved the raw score most (largest |contribution| first),
        each with its values in the two snapshots and a plain-language line.

        Only features whose value changed are drivers: TreeSHAP also shifts the contribution
        of an unchanged feature when another one changes (their interaction), and "0 -> 0"
        explains nothing to a person; that share is in the item's ``other_contribution``.
        Kept per (row, n): a second look (the next CSV download) costs a dict look-up."""
        found = self._drivers.get((row, n))
        if found is None:
            found = self._drivers[(row, n)] = self._strongest_changed(row, n)
        return found

    def _strongest_changed(self, row: int, n: int) -> list[dict]:
        self.explain([row])
        contrib = self.contrib[row]
        size = np.where(self.changed[row], np.abs(contrib), 0.0)
        out = []
        for j in np.argsort(-size, kind="stable")[:n]:
            if size[j] == 0:
                break
            feature = self.features[j]
            before, after = self._value(0, row, feature), self._value(1, row, feature)
            description = self.labels.get(feature, feature)
            out.append({"feature": feature, "description": description, "before": before,
                        "after": after, "contribution": float(contrib[j]),
                        "text": f"{description}: {shown(before)} -> {shown(after)}"})
        return out

    def _value(self, which: int, row: int, feature: str) -> object:
        """A feature's value in snapshot ``which`` (0 before, 1 after), JSON-ready."""
        values = self._values.get((which, feature))
        if values is None:  # once per feature: pandas look-ups cost ~10 us each
            snapshot = self.snapshots[which]
            if feature in snapshot.columns:
                column = snapshot[feature]
                values = column.astype(object).where(column.notna(), None).to_numpy()
            else:
                values = np.full(len(snapshot), None, dtype=object)
            self._values[(which, feature)] = values
        return plain(values[row])

    # --- the ranked list ----------------------------------------------------------------------
    @cached_property
    def _owners(self) -> list[str]:
        named = sorted({v for v in self.table["owner"] if isinstance(v, str)})
        if UNASSIGNED not in named and self.table["owner"].isna().any():
            named.append(UNASSIGNED)
        return named

    @cached_property
    def _segments(self) -> list[str]:
        return sorted({v for v in self.table["segment"] if isinstance(v, str)})

    def owners(self) -> list[str]:
        """Owners of the newer run's accounts (``unassigned``: those without one)."""
        return list(self._owners)

    def segments(self) -> list[str]:
        return list(self._segments)

    def mask(self, owner: str | None, segment: str | None) -> np.ndarray:
        keep = np.ones(len(self.ids), dtype=bool)
        if owner is not None:
            column = self.table["owner"]
            hit = column == owner
            keep &= (hit | column.isna()).to_numpy() if owner == UNASSIGNED else hit.to_numpy()
        if segment is not None:
            keep &= (self.table["segment"] == segment).to_numpy()
        return keep

    def page(self, owner: str | None, segment: str | None, limit: int, cursor: str | None
             ) -> tuple[list[int], list[int], str | None, int]:
        """Rows of one page (in rank order), their ranks in the filtered list, the next
        cursor and the filtered list's length."""
        keep = np.flatnonzero(self.mask(owner, segment))
        start = 0 if cursor is None else self._after(cursor, owner, segment, keep)
        rows = keep[start: start + limit].tolist()
        more = start + limit < len(keep)
        next_cursor = self._cursor(rows[-1], start + limit, owner, segment) if more and rows \
            else None
        return rows, list(range(start + 1, start + len(rows) + 1)), next_cursor, len(keep)

    def _cursor(self, row: int, position: int, owner: str | None, segment: str | None) -> str:
        raw = orjson.dumps({"k": self.kind, "b": str(self.runs.before),
                            "a": str(self.runs.after), "o": owner, "s": segment,
                            "p": position, "id": self.ids[row]})
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _after(self, cursor: str, owner: str | None, segment: str | None,
               keep: np.ndarray) -> int:
        try:
            data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            position, last = int(data["p"]), str(data["id"])
            same = (data["k"], data["b"], data["a"], data["o"], data["s"]) == (
                self.kind, str(self.runs.before), str(self.runs.after), owner, segment)
        except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
            raise ChangeCursorError("not a cursor issued by this list") from exc
        if not same:
            raise ChangeCursorError("this cursor belongs to another list (kind, runs or "
                                    "filters differ): start again without it")
        if not 0 < position <= len(keep) or self.ids[keep[position - 1]] != last:
            raise ChangeCursorError("not a cursor issued by this list")
        return position

    # --- items --------------------------------------------------------------------------------
    def items(self, rows: list[int], ranks: list[int], n_drivers: int = DRIVERS) -> list[dict]:
        """Response items of rows (attribution computed for them all at once)."""
        self.explain(rows)
        records = self.table.iloc[rows].to_dict("records")
        return [self.item(record, row, rank, n_drivers)
                for record, row, rank in zip(records, rows, ranks, strict=True)]

    def item(self, record: dict, row: int, rank: int | None, n_drivers: int = DRIVERS
             ) -> dict:
        number = {k: plain(record[k]) for k in (
            "arr", "churn_probability", "previous_churn_probability", "upsell_probability",
            "previous_upsell_probability", "arr_at_risk", "previous_arr_at_risk", "change",
            "weighted_change")}
        risk, previous_risk = number["arr_at_risk"], number["previous_arr_at_risk"]
        drivers = self.drivers(row, n_drivers)
        raw_change = float(self.raw[row, 1] - self.raw[row, 0])
        return {
            "account_id": record["account_id"], "name": plain(record["name"]),
            "owner": plain(record["owner"]), "segment": plain(record["segment"]),
            "as_of": str(self.runs.after), "previous_as_of": str(self.runs.before),
            "kind": self.kind, **number,
            "arr_at_risk_change": None if risk is None or previous_risk is None
            else risk - previous_risk,
            "raw_change": raw_change,
            "play": plain(record["play"]), "model_version": self.version,
            "previous_model_version": self.previous_version,
            "model_changed": self.model_changed, "drivers": drivers,
            "other_contribution": raw_change - sum(d["contribution"] for d in drivers),
            "rank": rank,
        }


def joined_runs(history: ScoreHistory, runs: Runs) -> pd.DataFrame:
    """The accounts scored in both runs: the newer run's columns and the older run's
    probabilities and ARR at risk as ``previous_*``."""
    after = _run(history, runs.after)
    before = _run(history, runs.before)[["account_id", "churn_probability",
                                          "upsell_probability", "arr_at_risk"]]
    return after.merge(before.add_prefix("previous_").rename(
        columns={"previous_account_id": "account_id"}), on="account_id", how="inner")


def _run(history: ScoreHistory, as_of: date) -> pd.DataFrame:
    frame = history.read(as_of)
    for column in RUN_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    frame = frame[list(RUN_COLUMNS)].copy()
    frame["account_id"] = frame["account_id"].astype(str)
    return frame


ModelLoader = Callable[[str, str], LoadedModel]  # (task, uri) -> the model


@dataclass
class ChangeCache:
    """Change sets of one generation, per (runs and their published versions, kind, model
    version): a reload or a re-run of a date starts afresh."""

    sets: OrderedDict = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: tuple, build: Callable[[], ChangeSet]) -> ChangeSet:
        with self.lock:
            found = self.sets.get(key)
            if found is not None:
                self.sets.move_to_end(key)
                return found
        built = build()  # outside the lock: a slow build does not hold up other keys' hits
        with self.lock:
            self.sets[key] = built
            while len(self.sets) > CACHED_SETS:
                self.sets.popitem(last=False)
        return built


def change_set(history: ScoreHistory, features_dir, kind: str, since: date | None,
               served: dict[str, LoadedModel], load: ModelLoader, labels: dict[str, str],
               cache: ChangeCache) -> ChangeSet:
    """The comparison of ``kind`` between the runs :func:`pick_runs` picks, from the cache.

    The model is the newer run's (its note names it): the served one when its version is that,
    else loaded with ``load(task, uri)``."""
    from features.store import FeatureStore

    task = kind
    runs = pick_runs(history.dates(), since)
    notes = [history.note(d).get("models", {}).get(task) or {} for d in (runs.before,
                                                                         runs.after)]
    if not notes[1].get("uri"):
        raise ChangesError(404, "no_model", f"the run of {runs.after} does not name its "
                           f"{task} model (_scoring.json): re-run it")
    versions = tuple(None if n.get("version") is None else str(n["version"]) for n in notes)
    key = (kind, runs, *(history.path(d).resolve().name for d in (runs.before, runs.after)),
           versions)

    def build() -> ChangeSet:
        model = served.get(task)
        if model is None or model.version is None or model.version != versions[1]:
            model = load(task, notes[1]["uri"])
        store = FeatureStore(features_dir)
        snapshots = []
        for d in (runs.before, runs.after):
            try:
                snapshots.append(store.read(d))
            except FileNotFoundError as exc:
                raise ChangesError(404, "no_snapshot", f"no feature snapshot of {d} in "
                                   f"{store.root}: the attribution needs the snapshots of both "
                                   "runs") from exc
        return ChangeSet(kind, runs, joined_runs(history, runs), model, versions,
                         (snapshots[0], snapshots[1]), labels)

    return cache.get(key, build)
