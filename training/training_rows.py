"""The training rows of a split held slim: their feature matrix built date by date.

`training.dataset.build_dataset` stacks every date's labelled snapshot into one frame of every
feature; training then turns it into a float matrix (`training.models.model_matrix`) and keeps
only a few of its columns. At 100,000 accounts x 17 dates, cross-sell's pairs (account x product
not held) are 2.7 M rows: the stack was ~1.9 GB, its concatenation ~3.9 GB at the peak, the
matrix another 1.8 GB beside it. Here each date's rows become their part of the matrix and of
the few kept columns as soon as they are read, and nothing holds every feature of every date
as a frame: the peak is the matrix and one date.

The result is the stacked path's, number for number: the same matrix (each column converted
as `model_matrix` converts it, per date: the conversions are value by value; above 250,000
rows stored as float32, `training.models.matrix_dtype`), the same schema
(`FeatureSchema.infer`'s rule over the dates' columns), the same features dropped as constant
or null (`training.train.uninformative`'s rule, over the dates' distinct values), the same kept
columns with the stack's dtypes (tested against the stacked path on generated books, every
task). The rows' digest is taken per date (`frame_digest` of each date's rows, chained). The
references' columns are held once per (account, as_of) where they repeat (`PerAccount`:
cross-sell's pairs) and given back as the stacked frame's after the fits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from features.catalogue import ACCOUNT_ID, CANDIDATE_PRODUCT
from features.sources import RawTables
from features.store import FeatureStore
from training.dataset import (
    ADDED_COLUMNS,
    _date_rows,
    _product_as_category,
    _usable,
    return_freed_memory,
)
from training.fingerprint import frame_digest
from training.models import (
    FeatureSchema,
    _as_float,
    _is_categorical_dtype,
    level_codes,
    matrix_dtype,
)

#: The columns a labelled row takes from its labels (one value per row: per account and
#: candidate product for cross-sell's pairs); every other column is its snapshot's, one value
#: per (account, as_of)
PER_ROW = (*ADDED_COLUMNS, CANDIDATE_PRODUCT)


@dataclass
class PerAccount:
    """Columns of the training rows held once per (account, as_of) where they can be: the
    snapshot's columns in ``keyed`` (one row per account and date), each training row's
    position in it in ``index``; the labels' columns (`PER_ROW`) in ``per_row``, one row per
    training row. ``frame()`` is the frame of the rows themselves, ``columns`` in order.

    Why: cross-sell's rows are pairs (account x product not held): 2.7 M rows at 100,000
    accounts x 17 dates, and the health scorecard's 10 measures and the keys (the references'
    columns, read after the fits) repeated once per candidate product were ~0.28 GB held
    under every fit. For the other tasks (one row per account and date) ``keyed`` holds every
    row."""

    keyed: pd.DataFrame
    index: np.ndarray  # int32: the keyed row of each training row
    per_row: pd.DataFrame
    columns: list[str]

    def __len__(self) -> int:
        return len(self.index)

    def frame(self) -> pd.DataFrame:
        """The columns as one frame of the training rows (a RangeIndex), dtypes kept."""
        parts = {c: self.per_row[c] if c in self.per_row.columns
                 else self.keyed[c].take(self.index).reset_index(drop=True)
                 for c in self.columns}
        return pd.DataFrame(parts, columns=self.columns)


@dataclass
class TrainingRows:
    """Every training row once: ``x`` (the `model_matrix` of the stacked rows in
    ``schema.columns`` order), ``frame`` (the ``kept`` columns), ``measures`` (the ``measured``
    columns, for the references, held once per account and date: `PerAccount`), the
    ``features`` given to the model and those ``dropped`` (constant or all-null over the
    rows), and ``digest`` (what the rows hold, for the fingerprint)."""

    x: np.ndarray
    schema: FeatureSchema
    features: list[str]
    dropped: list[str]
    frame: pd.DataFrame
    measures: PerAccount
    digest: str


@dataclass
class _Date:
    """One date's share: its numeric features as a float matrix, its categorical features,
    and what the choice of features needs (each column's single value, when it has one)."""

    as_of: date
    columns: tuple[str, ...]
    numeric: list[str]
    values: np.ndarray  # rows x numeric, float64
    categorical: dict[str, pd.Series]
    single: dict[str, pd.Series] = field(default_factory=dict)  # column -> its one value
    varied: set[str] = field(default_factory=set)  # columns with two values or more


def build_training_rows(
    task: str,
    tables: RawTables,
    store: FeatureStore,
    dates: list[date],
    horizon_days: int,
    *,
    candidates: list[str],
    kept: tuple[str, ...],
    measured: list[str],
    **label_kwargs,
) -> TrainingRows:
    """The training rows of ``dates`` (those with a snapshot and an observed label window) as
    `TrainingRows`. ``candidates``: the catalogue's feature names (those in the snapshots are
    the features, then the candidate product of cross-sell's pairs); ``kept`` and ``measured``:
    the columns kept whole. Errors as `build_dataset`'s, and a ``ValueError`` naming the
    dates when their snapshots hold other columns, or a column as text in one and numbers in
    another (one catalogue writes one schema: rebuild them)."""
    parts: list[_Date] = []
    frames: list[pd.DataFrame] = []
    keyed: list[pd.DataFrame] = []  # the measured columns of the snapshots, per account
    per_row: list[pd.DataFrame] = []  # those of the labels, per row
    index: list[np.ndarray] = []
    n_keyed = 0
    digest = hashlib.sha256()
    seen: dict[str, dict] = {}  # per kept column of objects: each distinct value once
    for as_of in _usable(task, tables, store, dates, horizon_days):
        rows = _date_rows(task, tables, store, as_of, horizon_days, label_kwargs)
        if parts and tuple(rows.columns) != parts[0].columns:
            raise ValueError(
                f"the feature snapshots of {parts[0].as_of} and {as_of} hold different "
                f"columns ({sorted(set(rows.columns) ^ set(parts[0].columns))}); rebuild them "
                "with one feature catalogue")
        names = [c for c in candidates if c in rows.columns]
        names += [CANDIDATE_PRODUCT] if CANDIDATE_PRODUCT in rows.columns else []
        parts.append(_share(as_of, rows, names))
        _narrow(parts)
        frames.append(_interned(rows, [c for c in kept if c in rows.columns], seen))
        here = [c for c in measured if c in rows.columns]
        first = _first_of_account(rows)
        snapshot = [c for c in here if c not in PER_ROW]
        keyed.append(_interned(rows.loc[first, snapshot], snapshot, seen))
        per_row.append(_interned(rows, [c for c in here if c in PER_ROW], seen))
        index.append((np.cumsum(first) - 1 + n_keyed).astype(np.int32))
        n_keyed += len(keyed[-1])
        digest.update(frame_digest(rows).encode())
        del rows
        return_freed_memory()
    features = [c for c in candidates if c in parts[0].columns]
    features += [CANDIDATE_PRODUCT] if CANDIDATE_PRODUCT in parts[0].columns else []
    categorical = _categorical(parts, features)
    dropped = [f for f in features if _uninformative(parts, f)]
    used = [f for f in features if f not in dropped]
    schema = FeatureSchema(
        [f for f in used if f not in categorical],
        {f: sorted(set().union(*(_levels(p.categorical[f]) for p in parts)))
         for f in used if f in categorical})
    frame = _product_as_category(pd.concat(frames, ignore_index=True))
    del frames
    x = _matrix(parts, schema)
    measures = PerAccount(pd.concat(keyed, ignore_index=True), np.concatenate(index),
                          pd.concat(per_row, ignore_index=True), here)
    return TrainingRows(x, schema, used, dropped, frame, measures, digest.hexdigest())


def _first_of_account(rows: pd.DataFrame) -> np.ndarray:
    """Whether each of a date's rows is the first of its account's run (the rows come in
    account order: `training.dataset._date_rows`); the snapshot's columns are the same on
    every row of a run (the labels join one snapshot row to each of its pairs)."""
    accounts = rows[ACCOUNT_ID].to_numpy()
    first = np.ones(len(accounts), dtype=bool)
    first[1:] = accounts[1:] != accounts[:-1]
    return first


def _interned(rows: pd.DataFrame, columns: list[str], seen: dict[str, dict]) -> pd.DataFrame:
    """``rows[columns]``, copied, each column of Python objects (account ids, dates, segment
    and product names) pointing at one object per distinct value across the dates.

    Why: each date's reads make an object per row (2.7 M account ids and as many dates and
    product names at 100,000 accounts x 17 dates of cross-sell pairs); kept, they pinned
    ~1 GB of the heap between the freed ones of every date. The values and dtypes are the
    same."""
    out = rows[columns].copy()
    for col in columns:
        if out[col].dtype == object:
            known = seen.setdefault(col, {})
            values = out[col].to_numpy()
            out[col] = np.fromiter((known.setdefault((type(v), v), v) for v in values),
                                   dtype=object, count=len(values))
    return out


def _share(as_of: date, rows: pd.DataFrame, names: list[str]) -> _Date:
    """What the matrix and the choice of features need from one date's ``rows``."""
    numeric = [c for c in names if not _is_categorical_dtype(rows[c])]
    values = np.empty((len(rows), len(numeric)), dtype="float64", order="F")
    for j, col in enumerate(numeric):
        try:
            values[:, j] = _as_float(rows[col], errors="raise")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"numeric feature {col!r} holds non-numeric values: {exc}") from exc
    share = _Date(as_of, tuple(rows.columns), numeric, values,
                  {c: rows[c].astype("category") for c in names if c not in numeric})
    for col in names:
        count = rows[col].nunique(dropna=False)
        if count > 1:
            share.varied.add(col)
        elif count == 1:
            share.single[col] = rows[col].iloc[:1].reset_index(drop=True)
    return share


def _narrow(parts: list[_Date]) -> None:
    """The shares in the matrix's float type as soon as the rows so far decide it (float32
    once they pass 250,000, `matrix_dtype`): the same numbers as narrowing at the end, at
    half the memory while the dates are read."""
    dtype = np.dtype(matrix_dtype(sum(len(p.values) for p in parts)))
    for p in parts:
        if p.values.dtype != dtype:
            p.values = p.values.astype(dtype, order="F")


def _categorical(parts: list[_Date], features: list[str]) -> set[str]:
    """The features that are text (or categorical) in the snapshots: in all of them, or an
    error naming the first two dates that disagree."""
    found = set()
    for f in features:
        kinds = {p.as_of: f in p.categorical for p in parts}
        if len(set(kinds.values())) > 1:
            text = next(d for d, k in kinds.items() if k)
            numbers = next(d for d, k in kinds.items() if not k)
            raise ValueError(
                f"feature column {f!r} is text in the snapshot of {text} and numbers in that "
                f"of {numbers}; rebuild them with one feature catalogue")
        if parts and kinds[parts[0].as_of]:
            found.add(f)
    return found


def _uninformative(parts: list[_Date], column: str) -> bool:
    """`training.train.uninformative`'s rule over the stacked dates: at most one distinct
    value (null counting as one) over every row."""
    if any(column in p.varied for p in parts):
        return False
    singles = [p.single[column] for p in parts if column in p.single]
    return not singles or pd.concat(singles, ignore_index=True).nunique(dropna=False) <= 1


def _levels(s: pd.Series) -> set[str]:
    """`FeatureSchema.infer`'s levels of one date's column."""
    return {str(v) for v in s.dropna().unique()}


def _matrix(parts: list[_Date], schema: FeatureSchema) -> np.ndarray:
    """The dates' shares stacked into one C-ordered float matrix in ``schema.columns``
    order (float64, or float32 at large books: `training.models.matrix_dtype`), each share
    freed once copied (the peak is the matrix and one share)."""
    n_rows = sum(len(p.values) for p in parts)
    x = np.empty((n_rows, len(schema.columns)), dtype=matrix_dtype(n_rows))
    start = 0
    while parts:
        p = parts.pop(0)
        stop = start + len(p.values)
        for j, col in enumerate(schema.numeric):
            x[start:stop, j] = p.values[:, p.numeric.index(col)]
        for j, (col, levels) in enumerate(schema.categorical.items(), start=len(schema.numeric)):
            x[start:stop, j] = level_codes(p.categorical[col], levels)
        start = stop
        del p
    return_freed_memory()
    return x
