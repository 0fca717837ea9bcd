"""A grid chunk's projection in Arrow and numpy (features.grid_projection) gives the bytes of the
same projection in DuckDB (``projection_sql``) for any values: casts, fills, DuckDB's ROUND of
doubles (-0.0, halves, infinities), DECIMALs as doubles, the derived expressions, and the columns
it leaves to DuckDB (an overflow, a DECIMAL beyond 2**53, a float fill)."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import exact_np, grid_projection
from features.build import _available, _typed
from features.catalogue import ACCOUNT_ID, AS_OF, Feature, FeatureGroup

ROW = "_row"


def _f(name: str, dtype: str, fill=None, expr: str | None = None, source: str = "src") -> Feature:
    return Feature(name, name, "f", source, dtype, None, expr=expr, fill=fill)  # type: ignore[arg-type]


GROUPS = [
    FeatureGroup("g", "f", "src", (
        _f("count", "int64", fill=0), _f("days", "int64", fill=180), _f("flag", "int64"),
        _f("ratio", "float64"), _f("money", "float64"), _f("label", "string"),
        _f("odd_fill", "float64", fill=0.5)), cte=lambda s: ""),
    FeatureGroup("gone", "f", "absent", (_f("nothing", "int64", fill=0, source="absent"),
                                         _f("nowhere", "float64", source="absent")),
                 cte=lambda s: ""),
    FeatureGroup("derived", "derived", "src", (
        _f("per_count", "float64", expr="CASE WHEN count > 0 THEN ratio / CAST(count AS DOUBLE) "
                                        "END"),
        _f("from_absent", "float64", expr="nothing * 2.0", source="src+absent")), cte=None),
]
PRESENT = frozenset({"src"})


def same_bits(left: pa.Table, right: pa.Table) -> None:
    """Equal schemas, validity and values, doubles bit for bit (-0.0 is not 0.0)."""
    assert left.schema == right.schema
    for name in left.column_names:
        a, b = left[name].combine_chunks(), right[name].combine_chunks()
        if not pa.types.is_floating(a.type):
            assert a.equals(b), name
            continue
        valid = a.is_valid().to_numpy(zero_copy_only=False)
        assert np.array_equal(valid, b.is_valid().to_numpy(zero_copy_only=False)), name
        bits = [np.asarray(x.to_numpy(zero_copy_only=False)).view(np.int64)[valid]
                for x in (a, b)]
        assert np.array_equal(*bits), name


def both(aligned: grid_projection.Aligned) -> tuple[pa.Table, pa.Table]:
    """The projection by DuckDB over the family columns taken by Arrow, and by ``project``."""
    con = duckdb.connect()
    sql = grid_projection.projection_sql(GROUPS, PRESENT, _available, _typed, ROW)
    reference = grid_projection.in_order(
        con.from_arrow(aligned.table()).query("a", sql).to_arrow_table(), ROW)
    return reference, grid_projection.project(con, aligned, GROUPS, PRESENT, _available, _typed,
                                              ROW)


def aligned(family: dict, take: list[int]) -> grid_projection.Aligned:
    """Base rows (one per entry of ``take``) and the family ``g``'s rows (``family``) placed on
    them: the family's row ``take[i]`` on base row i (-1: none)."""
    n = len(take)
    chunk = grid_projection.Aligned({
        ACCOUNT_ID: pa.array([f"A{i}" for i in range(n)]),
        AS_OF: pa.array([20148] * n, pa.date32()), ROW: pa.array(np.arange(n))}, n)
    chunk.place(GROUPS[0], pa.table(family), np.array(take, dtype=np.int64))
    return chunk


DOUBLES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-10**9, 10**9).map(lambda k: k / 2e6),  # halves of the sixth decimal
    st.integers(-10**7, 10**7).map(lambda k: k * 1e-7),
    st.sampled_from([0.0, -0.0, 2.5e-7, -2.5e-7, 4.9999999999999996e-7, 1e300, -1e300, 2.0**60]))
CENTS = st.one_of(st.integers(-(2**53) + 1, 2**53 - 1), st.integers(-(10**30), 10**30))
INTEGER_TYPES = st.sampled_from(["int64", "int32", "decimal0"])


def family_rows(m: int, data) -> dict:
    def ints(kind: str, bound: int) -> pa.Array:
        values = data.draw(st.lists(st.one_of(st.none(), st.integers(-bound, bound)),
                                    min_size=m, max_size=m))
        if kind == "decimal0":
            return pa.array([None if v is None else Decimal(v) for v in values],
                            pa.decimal128(38, 0))
        return pa.array(values, pa.int32() if kind == "int32" else pa.int64())

    count_kind = data.draw(INTEGER_TYPES)
    big = data.draw(st.booleans())  # a DECIMAL(38, 0) beyond BIGINT: left to DuckDB (raises)
    money = data.draw(st.lists(st.one_of(st.none(), CENTS), min_size=m, max_size=m))
    ratio_kind = data.draw(st.sampled_from(["double", "int64"]))
    ratio = data.draw(st.lists(st.one_of(st.none(), DOUBLES if ratio_kind == "double" else
                                         st.integers(-(2**62), 2**62)), min_size=m, max_size=m))
    return {
        ACCOUNT_ID: pa.array([f"A{i}" for i in range(m)]),
        "count": ints(count_kind, 2**31 - 1 if count_kind == "int32" else 2**40),
        "days": ints("int64", 2**62),
        "flag": ints("decimal0", 2**62 if not big else 10**20),
        "ratio": pa.array(ratio, pa.float64() if ratio_kind == "double" else pa.int64()),
        "money": pa.array([None if v is None else Decimal(v).scaleb(-2) for v in money],
                          pa.decimal128(38, 2)),
        "label": pa.array(data.draw(st.lists(st.one_of(st.none(), st.text(max_size=3)),
                                             min_size=m, max_size=m))),
        "odd_fill": pa.array(data.draw(st.lists(st.one_of(st.none(), DOUBLES),
                                                min_size=m, max_size=m)), pa.float64()),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(has_row=st.lists(st.booleans(), max_size=12), data=st.data())
def test_the_arrow_projection_has_the_bytes_of_duckdbs(has_row, data):
    """Any values of the family's rows, in any order, some base rows without one."""
    m = sum(has_row)
    where = iter(data.draw(st.permutations(range(m))))
    chunk = aligned(family_rows(m, data), [next(where) if row else -1 for row in has_row])
    try:
        reference, _ = both(chunk)
    except duckdb.ConversionException:  # a DECIMAL(38, 0) beyond BIGINT: the same error
        with pytest.raises(duckdb.ConversionException):
            both(chunk)
        return
    same_bits(reference, both(chunk)[1])


def test_the_exact_cases_stay_out_of_duckdb():
    chunk = aligned({
        ACCOUNT_ID: ["A2", "A1"], "count": pa.array([7, None], pa.int32()), "days": [3, None],
        "flag": pa.array([None, Decimal(1)], pa.decimal128(38, 0)), "ratio": [-0.0, 0.0000025],
        "money": pa.array([None, Decimal("12345.67")], pa.decimal128(38, 2)),
        "label": [None, "x"], "odd_fill": [1.0, None]}, [1, 0, -1])
    f = {f.name: f for g in GROUPS for f in g.features}

    def value(name: str) -> list | None:
        done = grid_projection._value(chunk, GROUPS[0], f[name], True, 6)
        return None if done is None else done.to_pylist()

    assert value("count") == [0, 7, 0] and value("days") == [180, 3, 180]
    assert value("flag") == [1, None, None] and value("label") == ["x", None, None]
    ratio = value("ratio")
    assert ratio == [0.000003, 0.0, None] and str(ratio[1]) == "-0.0"  # half away from zero
    assert value("money") == [12345.67, None, None]
    assert value("odd_fill") is None  # a float fill: left to DuckDB
    reference, projected = both(chunk)
    same_bits(reference, projected)
    assert projected["per_count"].to_pylist() == [None, round(-0.0 / 7, 6), None]
    assert projected["nothing"].null_count == 3 and projected["from_absent"].null_count == 3
    assert projected["odd_fill"].to_pylist() == [0.5, 1.0, 0.5]


@settings(max_examples=300, deadline=None)
@given(values=st.lists(DOUBLES, max_size=20), places=st.integers(0, 8))
def test_round_double_is_duckdbs_round(values, places):
    table = pa.table({"i": np.arange(len(values)), "x": pa.array(values, pa.float64())})
    want = duckdb.connect().from_arrow(table).query(
        "t", f"SELECT ROUND(x, {places}) AS x FROM t ORDER BY i").to_arrow_table()["x"]
    want = np.asarray(want.to_numpy(zero_copy_only=False), np.float64)
    got = exact_np.round_double(np.array(values, dtype=np.float64), places)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.int64), want[~nan].view(np.int64))


def test_the_alignment_places_each_family_row_on_its_date_and_account():
    from features import grid_assembly
    from features.grid_assembly import DAY

    base = pa.table({DAY: [0, 0, 1], ACCOUNT_ID: ["A1", "A2", "A1"]})
    family = pa.table({
        DAY: [1, 0, 0, 1, 0],
        ACCOUNT_ID: pa.DictionaryArray.from_arrays(pa.array([0, 1, 2, 1, 3]),
                                                   pa.array(["A1", "A2", "Z9", None])),
        "count": [10, 20, 30, 40, 50]})  # A1 has no row on date 0; Z9 is in no snapshot
    strings = family.set_column(1, ACCOUNT_ID, family[ACCOUNT_ID].cast(pa.string()))
    dates = [np.datetime64("2025-03-01", "D").item(), np.datetime64("2025-04-01", "D").item()]
    for rows in (family, strings):
        chunk = grid_assembly._aligned([GROUPS[0]], dates, base, [rows])
        assert chunk.column("g", "count").to_pylist() == [None, 20, 10]
        assert chunk.columns[AS_OF].to_pylist() == [dates[0], dates[0], dates[1]]
    twice = pa.table({DAY: [0, 0], ACCOUNT_ID: ["A1", "A1"], "count": [1, 2]})
    with pytest.raises(grid_assembly.DuplicateRows, match="'g'"):
        grid_assembly._aligned([GROUPS[0]], dates, base, [twice])
