"""A grid chunk's projection in Arrow and numpy: ``build.snapshot_sql``'s casts, fills and rounding
of each family column, to the bit, without a DuckDB pass over every column.

The projection of a chunk's aligned rows (``grid_assembly``) was one DuckDB query over ~80
columns of up to 400,000 rows: 0.85 CPU-s of the 30,000-account monthly grid, ~2.8 of the
100,000-account one, of which a third was DuckDB reading the Arrow columns and writing them
back. Most columns need nothing but what Arrow and numpy do exactly:

- an integer or a DECIMAL of scale 0 as BIGINT, its nulls filled with an integer: Arrow's
  checked cast (an overflow sends the column to SQL, which raises as it always did);
- a DOUBLE rounded to ``FLOAT_DECIMALS`` places: DuckDB's ``ROUND`` (``exact_np.round_double``);
- a DECIMAL as DOUBLE: DuckDB divides the unscaled integer, converted to a double, by the power
  of ten; exact in numpy for integers below 2**53 (larger ones go to SQL);
- a VARCHAR: the column itself.

What is left (the derived features, which are SQL expressions over the projected columns, and
any column outside those cases) is computed by DuckDB over just the columns it reads, as
``projection_sql`` would. The tests compare both projections for any values, and every grid
date with its single-date snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from features import exact_np
from features.catalogue import ACCOUNT_ID, AS_OF, Feature, FeatureGroup

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pyarrow as pa

EXACT_INTEGER = 2**53  # below this, an integer converts to a double exactly


class Aligned:
    """A chunk's rows (``grid_assembly._aligned``): the base columns (account, as_of, the rows'
    positions) and, per family, its rows and the position of each base row's row in them (-1:
    none). A family column is taken onto the base rows by the projection, in numpy where that
    is exact (one pass with its cast, fill and rounding), else by Arrow's ``take``."""

    def __init__(self, columns: dict, rows: int):
        self.columns = columns
        self.rows = rows
        self.families: dict[str, tuple[pa.Table, np.ndarray]] = {}
        self._gather: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def place(self, group: FeatureGroup, rows: pa.Table, take: np.ndarray) -> None:
        self.families[group.name] = (rows, take)
        self._gather.pop(group.name, None)

    def gather(self, group: str) -> tuple[np.ndarray, np.ndarray]:
        """Per base row, an index into the family's rows (0 where it has none: any row) and
        whether it has one; computed once per family."""
        import numpy as np

        if group not in self._gather:
            take = self.families[group][1]
            hit = take >= 0
            self._gather[group] = (np.where(hit, take, 0), hit)
        return self._gather[group]

    def column(self, group: str, name: str) -> pa.ChunkedArray:
        """A family column on the base rows, null where the family has no row."""
        import pyarrow as pa

        rows, take = self.families[group]
        return rows[name].take(pa.array(take, mask=take < 0))

    def table(self) -> pa.Table:
        """The base columns and every family column ``"<group>.<feature>"`` on the base rows
        (what ``projection_sql`` reads)."""
        import pyarrow as pa

        return pa.table(self.columns | {
            f"{group}.{name}": self.column(group, name)
            for group, (rows, _) in self.families.items() for name in rows.column_names
            if name not in (ACCOUNT_ID, "_grid_day")})


def project(con: duckdb.DuckDBPyConnection, aligned: Aligned, groups: list[FeatureGroup],
            present: frozenset[str], available: Callable, typed: Callable[[str, Feature], str],
            row: str) -> pa.Table:
    """The snapshot rows of ``aligned`` (its base columns hold the rows' positions as
    ``row``), in its order, with the columns and types of ``build.snapshot_sql``."""
    import pyarrow as pa

    from features.build import FLOAT_DECIMALS

    done: dict[str, pa.Array | pa.ChunkedArray | None] = {
        ACCOUNT_ID: aligned.columns[ACCOUNT_ID], AS_OF: aligned.columns[AS_OF]}
    in_sql: list[tuple[FeatureGroup, Feature]] = []
    for g in groups:
        if g.cte is None:
            continue
        for f in g.features:
            done[f.name] = value = _value(aligned, g, f, available(f, present), FLOAT_DECIMALS)
            if value is None:
                in_sql.append((g, f))
    derived = [f for g in groups if g.cte is None for f in g.features]
    if in_sql or derived:
        done |= _in_sql(con, aligned, done, in_sql, derived, present, available, typed, row)
    return pa.table(done)


def _value(aligned: Aligned, group: FeatureGroup, feature: Feature, available: bool,
           decimals: int) -> pa.Array | None:
    """The family column on the base rows, cast, filled and rounded as ``build._typed`` does
    in SQL, or None where that is not one of the exact cases above."""
    import pyarrow as pa

    target = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string()}.get(
        feature.dtype)
    if target is None:
        return None
    if not available:  # the source is absent: CAST(NULL AS ...), rounded: still NULL
        return pa.nulls(aligned.rows, target)
    column = aligned.families[group.name][0][feature.name]
    array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if feature.dtype == "int64":
        return _integer(array, aligned.gather(group.name), feature.fill)
    if feature.fill is not None:
        return None
    if feature.dtype == "string":
        return aligned.column(group.name, feature.name) if array.type == pa.string() else None
    values = _double(array)
    if values is None:
        return None
    placed, valid = _placed(values, array, aligned.gather(group.name))
    return pa.array(exact_np.round_double(placed, decimals), mask=None if valid.all() else ~valid)


def _placed(values: np.ndarray, array: pa.Array, gather: tuple[np.ndarray, np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray]:
    """``values`` (of ``array``'s rows) on the base rows (``Aligned.gather``), and where they
    are valid (a row, and not null)."""
    import numpy as np

    index, hit = gather
    if not len(values):
        return np.zeros(len(index), values.dtype), np.zeros(len(index), bool)
    if array.null_count:
        hit = hit & array.is_valid().to_numpy(zero_copy_only=False)[index]
    return values[index], hit


def _integer(array: pa.Array, gather: tuple[np.ndarray, np.ndarray], fill
             ) -> pa.Array | None:
    """CAST(COALESCE(x, fill) AS BIGINT) of an integer or a DECIMAL of scale 0."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if not (pa.types.is_integer(kind) or (pa.types.is_decimal(kind) and kind.scale == 0)):
        return None
    if fill is not None and (isinstance(fill, bool) or not isinstance(fill, int)):
        return None
    try:
        cast = pc.cast(array, pa.int64())  # checked: an overflow raises
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    values = np.frombuffer(cast.buffers()[1], dtype=np.int64)[
        cast.offset:cast.offset + len(cast)] if len(cast) else np.zeros(0, np.int64)
    placed, valid = _placed(values, cast, gather)
    if fill is None:
        return pa.array(placed, mask=None if valid.all() else ~valid)
    placed[~valid] = fill
    return pa.array(placed)


def _double(array: pa.Array) -> np.ndarray | None:
    """CAST(x AS DOUBLE) of a DOUBLE, an integer or a DECIMAL whose unscaled integers are below
    2**53 (DuckDB: the integer as a double over the power of ten), as numpy (nulls: any value);
    None otherwise."""
    import numpy as np
    import pyarrow as pa

    kind = array.type
    if not len(array) and (kind == pa.float64() or pa.types.is_integer(kind)
                           or pa.types.is_decimal(kind)):
        return np.zeros(0)
    if kind == pa.float64():
        return np.frombuffer(array.buffers()[1], dtype=np.float64)[
            array.offset:array.offset + len(array)]
    if pa.types.is_integer(kind):
        try:
            return array.cast(pa.int64()).fill_null(0).to_numpy().astype(np.float64)
        except pa.ArrowInvalid:  # an unsigned integer beyond BIGINT
            return None
    if not (pa.types.is_decimal(kind) and kind.bit_width == 128):
        return None
    words = np.frombuffer(array.buffers()[1], dtype=np.int64).reshape(-1, 2)[
        array.offset:array.offset + len(array)]
    low, high = words[:, 0], words[:, 1]
    fits = (high == (low >> 63)) & (np.abs(low) < EXACT_INTEGER)
    if not bool(fits.all()):  # a null's slot may hold anything: look again without them
        valid = array.is_valid().to_numpy(zero_copy_only=False)
        if not bool(np.all(fits | ~valid)):
            return None
        low = np.where(valid, low, 0)
    return low.astype(np.float64) / float(10**kind.scale)


def _in_sql(con: duckdb.DuckDBPyConnection, aligned: Aligned, done: dict,
            in_sql: list[tuple[FeatureGroup, Feature]], derived: list[Feature],
            present: frozenset[str], available: Callable, typed: Callable, row: str) -> dict:
    """The columns left to DuckDB: ``projection_sql``'s expressions for them, over the aligned
    columns they read and the columns projected already (by name, as the derived features'
    expressions name them); DuckDB reads only the columns a query uses."""
    import pyarrow as pa

    names = {f.name for _, f in in_sql}
    source = {name: value for name, value in done.items()
              if value is not None and name not in (ACCOUNT_ID, AS_OF)}
    inner = [f'"{name}"' for name in source]
    for g, f in in_sql:
        column = f"{g.name}.{f.name}"
        source[column] = aligned.column(g.name, f.name)
        value = f'b."{column}"'
        value = f"COALESCE({value}, {f.fill})" if f.fill is not None else value
        inner.append(f'{typed(value, f)} AS "{f.name}"')
    source[row] = aligned.columns[row]
    outer = [f'"{name}"' for name in names] + [
        f'{typed(f.expr if available(f, present) else "NULL", f)} AS "{f.name}"'  # type: ignore[arg-type]
        for f in derived]
    sql = (f"SELECT {', '.join(outer)}, {row} FROM (SELECT {', '.join(inner)}, {row} FROM b)")
    result = in_order(con.from_arrow(pa.table(source)).query("b", sql).to_arrow_table(), row)
    return {name: result[name] for name in result.column_names}


def projection_sql(groups: list[FeatureGroup], present: frozenset[str], available, typed,
                   row: str) -> str:
    """The whole projection as one DuckDB query (what ``project`` replaces, kept as its
    reference for the tests): ``build.snapshot_sql``'s select lists over relation ``a`` of
    aligned rows (its date, ``as_of``, its row positions ``row``, and a column
    ``"<group>.<feature>"`` per family column) instead of the families' joins."""
    def value(f: Feature, g: FeatureGroup) -> str:
        if not available(f, present):
            return "NULL"
        column = f'a."{g.name}.{f.name}"'
        return f"COALESCE({column}, {f.fill})" if f.fill is not None else column

    inner = [f"a.{ACCOUNT_ID}", f"a.{AS_OF}"] + [
        f'{typed(value(f, g), f)} AS "{f.name}"'
        for g in groups if g.cte is not None for f in g.features
    ]
    outer = ["inner_snapshot.*"] + [
        f'{typed(f.expr if available(f, present) else "NULL", f)} AS "{f.name}"'  # type: ignore[arg-type]
        for g in groups if g.cte is None for f in g.features
    ]
    return (f"SELECT {', '.join(outer)} FROM (\nSELECT {', '.join(inner)}, a.{row}\nFROM a\n"
            f") inner_snapshot")


def in_order(done: pa.Table, row: str) -> pa.Table:
    """The projection's rows in the aligned rows' order (date, then account, as DuckDB sorted
    the base), without its row numbers. A projection keeps its input's order on one thread;
    where the rows come back in another, they are put back."""
    import numpy as np

    position = done[row].to_numpy()
    done = done.drop_columns([row])
    return done if bool(np.all(position[1:] > position[:-1])) else done.take(np.argsort(position))
