"""Building blocks of the generator: day/month arithmetic, growable columns, Arrow conversion.

Dates are held as ``int64`` days since 1970-01-01, months as ``int64`` months since 1970-01 and
timestamps as ``int64`` microseconds since the epoch, so that every step stays a numpy operation;
they become Arrow ``date32`` / ``timestamp[us]`` only when a table is written.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import Table

NULL = np.iinfo(np.int64).min  # null marker in int64 date / timestamp columns
US_PER_DAY = 86_400_000_000
US_PER_HOUR = 3_600_000_000

_ARROW_TYPES = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
}


def month_start(months: np.ndarray | int) -> np.ndarray:
    """First day (days since epoch) of each month (months since 1970-01)."""
    as_month = np.asarray(months, dtype=np.int64).astype("datetime64[M]")
    return as_month.astype("datetime64[D]").astype(np.int64)


def day_of(months: np.ndarray, dom: np.ndarray) -> np.ndarray:
    """Day ``dom`` (1-28) of each month."""
    return month_start(months) + np.asarray(dom, dtype=np.int64) - 1


def month_of(days: np.ndarray) -> np.ndarray:
    """Month (since 1970-01) containing each day."""
    as_day = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    return as_day.astype("datetime64[M]").astype(np.int64)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def office_time(rng: np.random.Generator, n: int) -> np.ndarray:
    """Microseconds into a day, within office hours (08:00-19:00), at second precision."""
    return rng.integers(8 * 3600, 19 * 3600, n).astype(np.int64) * 1_000_000


def times_in_span(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """One office-hours timestamp per row on a day uniformly drawn from ``[lo, hi)``."""
    day = lo + np.floor(rng.random(len(lo)) * (hi - lo)).astype(np.int64)
    return day * US_PER_DAY + office_time(rng, len(lo))


def group_ranks(counts: np.ndarray) -> np.ndarray:
    """0..count-1 for each group, for ``np.repeat(values, counts)`` rows."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(starts, counts)


class Columns:
    """Named numpy columns that grow by appending rows and allow in-place updates."""

    def __init__(self, dtypes: dict[str, type | np.dtype], capacity: int = 1024):
        self._data = {k: np.empty(max(capacity, 16), dtype=t) for k, t in dtypes.items()}
        self.size = 0

    def append(self, **cols: np.ndarray) -> np.ndarray:
        """Append rows (every column given, equal lengths); return their row indices."""
        n = len(next(iter(cols.values())))
        if cols.keys() != self._data.keys():
            raise ValueError(f"columns {sorted(cols)} != {sorted(self._data)}")
        need = self.size + n
        capacity = len(next(iter(self._data.values())))
        if need > capacity:
            new_cap = max(need, 2 * capacity)
            for k, arr in self._data.items():
                grown = np.empty(new_cap, dtype=arr.dtype)
                grown[: self.size] = arr[: self.size]
                self._data[k] = grown
        for k, v in cols.items():
            self._data[k][self.size : need] = v
        idx = np.arange(self.size, need, dtype=np.int64)
        self.size = need
        return idx

    def __getitem__(self, name: str) -> np.ndarray:
        """The live column (a view: writing to it updates the rows)."""
        return self._data[name][: self.size]


def arrow_schema(table: Table) -> pa.Schema:
    """The Arrow schema of a contract table: its columns, in order, with their logical types."""
    return pa.schema(
        [pa.field(c.name, _ARROW_TYPES[c.type], nullable=c.nullable) for c in table.columns]
    )


def date_array(days: np.ndarray) -> pa.Array:
    """``date32`` array from days since epoch; ``NULL`` entries become null."""
    days = np.asarray(days, dtype=np.int64)
    mask = days == NULL
    values = np.where(mask, 0, days).astype(np.int32)
    return pa.array(values, type=pa.int32(), mask=mask).cast(pa.date32())


def timestamp_array(us: np.ndarray) -> pa.Array:
    """``timestamp[us]`` array from microseconds since epoch; ``NULL`` entries become null."""
    us = np.asarray(us, dtype=np.int64)
    mask = us == NULL
    return pa.array(np.where(mask, 0, us), type=pa.int64(), mask=mask).cast(pa.timestamp("us"))


def float_array(values: np.ndarray) -> pa.Array:
    """``float64`` array; NaN entries become null."""
    values = np.asarray(values, dtype=np.float64)
    return pa.array(values, type=pa.float64(), mask=np.isnan(values))


def ids(prefix: str, index: np.ndarray, width: int) -> pa.Array:
    """Identifier strings ``<prefix><zero-padded index + 1>`` built without a Python loop."""
    numbers = pa.array(np.asarray(index, dtype=np.int64) + 1).cast(pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, width, "0"), "")


def take_strings(vocabulary: tuple[str, ...] | pa.Array, codes: np.ndarray) -> pa.Array:
    """Strings of a vocabulary picked by integer codes (C++ take, no Python loop)."""
    vocab = vocabulary if isinstance(vocabulary, pa.Array) else pa.array(vocabulary, pa.string())
    return vocab.take(pa.array(np.asarray(codes, dtype=np.int64)))
