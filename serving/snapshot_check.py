"""Rules a feature snapshot must pass before a generation built on it may serve.

A model scores whatever frame it is given (absent columns and text in numeric columns become
missing values), so a snapshot that lost columns, changed a type or came from another feature
catalogue would be served with quietly wrong scores. These pure functions compare a snapshot
with what each model was trained on and return the problems found; the loader refuses the
generation when there are any, and the old generation keeps serving.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date

import pandas as pd

from features.catalogue import CANDIDATE_PRODUCT

#: Columns a model takes that the scorer supplies itself (not read from the snapshot).
SUPPLIED = frozenset({CANDIDATE_PRODUCT})


@dataclass(frozen=True)
class Problem:
    """One broken rule: where (table, column), which rule, and what was found."""

    table: str
    column: str | None
    rule: str
    detail: str

    def sentence(self) -> str:
        where = self.table + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.rule}: {self.detail}"

    def to_dict(self) -> dict:
        return asdict(self)


class SnapshotRefused(RuntimeError):
    """The snapshot breaks a rule: the generation built on it must not serve."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(p.sentence() for p in problems))


def table_name(as_of: date) -> str:
    return f"feature snapshot as_of={as_of:%Y-%m-%d}"


def check_features(table: str, snapshot: pd.DataFrame, task: str, schema: Mapping) -> list[Problem]:
    """Every feature the model was trained on is present, numerics numeric, categoricals text.

    ``schema`` is the model's logged schema: {"numeric": [...], "categorical": {col: levels}}.
    """
    problems = []
    wanted = [(c, "numeric") for c in schema.get("numeric", [])] + [
        (c, "categorical") for c in schema.get("categorical", {})]
    for column, kind in wanted:
        if column in SUPPLIED:
            continue
        if column not in snapshot.columns:
            problems.append(Problem(table, column, "missing_feature",
                                    f"the {task} model was trained on it; the snapshot lacks it"))
        elif not _has_kind(snapshot[column], kind):
            problems.append(Problem(
                table, column, "wrong_type",
                f"the {task} model was trained on a {kind} column; the snapshot stores "
                f"{snapshot[column].dtype}"))
    return problems


def _has_kind(values: pd.Series, kind: str) -> bool:
    dtype = values.dtype
    if kind == "numeric":
        return pd.api.types.is_numeric_dtype(dtype)  # int, float, bool, nullable or not
    return isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype)


def check_catalogue(table: str, stamped: str | None, task: str, trained: str | None
                    ) -> list[Problem]:
    """The snapshot was built by the feature catalogue the model was trained on."""
    if stamped is not None and stamped == trained:
        return []
    found = "carries no catalogue version" if stamped is None else f"was built by {stamped}"
    return [Problem(table, None, "catalogue_version",
                    f"the {task} model was trained on feature catalogue {trained}; the snapshot "
                    f"{found}: rebuild it with `propensity features build` or retrain")]


def check_not_empty(table: str, rows: int) -> list[Problem]:
    if rows > 0:
        return []
    return [Problem(table, None, "empty", "the snapshot has 0 accounts")]


def check_accounts_drop(table: str, accounts: int, serving: int | None, max_drop: float,
                        force: bool = False) -> list[Problem]:
    """Refuse a snapshot with far fewer accounts than the serving generation's, unless forced.

    ``max_drop`` is the largest share of the serving accounts that may disappear (0.5: a new
    snapshot needs at least half as many accounts)."""
    if force or not serving or accounts >= serving * (1 - max_drop):
        return []
    return [Problem(
        table, None, "accounts_drop",
        f"{accounts} accounts where {serving} are serving (a drop of "
        f"{1 - accounts / serving:.0%}, more than the {max_drop:.0%} allowed by "
        "reload_max_account_drop); reload with force=true if it is intended")]


def check_snapshot(as_of: date, snapshot: pd.DataFrame, stamped: str | None,
                   models: Mapping[str, tuple[Mapping, str | None]]) -> list[Problem]:
    """All the rules that need no serving generation. ``models``: task -> (schema, catalogue
    version in the model's meta)."""
    table = table_name(as_of)
    problems = check_not_empty(table, len(snapshot))
    for task, (schema, trained) in models.items():
        problems += check_catalogue(table, stamped, task, trained)
        problems += check_features(table, snapshot, task, schema)
    return _unique(problems)


def _unique(problems: list[Problem]) -> list[Problem]:
    """One problem per (column, rule): several models missing one column is one problem."""
    seen: dict[tuple, Problem] = {}
    for p in problems:
        seen.setdefault((p.column, p.rule), p)
    return list(seen.values())
