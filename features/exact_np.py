"""DuckDB's exact numbers in numpy, for the grid's numpy forms: DECIMAL Arrow arrays from
integers, and DuckDB's AVG of integers and of DECIMALs, to the bit.

DuckDB's AVG of a BIGINT or of a DECIMAL held in 32, 64 or 128 bits adds the values as a 128-bit
integer, then divides that sum by ``count`` (a DECIMAL: by ``count * 10**scale``, the power of ten
a double) in ``long double`` and rounds the quotient to a double (``IntegerAverageOperationHugeint``
and ``HugeintAverageOperation`` in DuckDB's ``avg.cpp``; a 128-bit sum below 2**63 converts to
``long double`` exactly). On x86-64 ``long double`` is the x87 80-bit type, numpy's
``longdouble`` here, so the same two roundings give the same double. DuckDB's optimizer rewrites
an AVG as SUM / COUNT (a division in doubles) only in a query that also sums the same argument;
the families' queries do not (``tests/features/test_revenue_np.py`` checks both shapes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


def average(total: np.ndarray, count: np.ndarray, scale: int = 0) -> np.ndarray:
    """DuckDB's AVG from the exact integer sum (in units of 10**-scale) and the count:
    ``(long double) total / ((long double) count * 10**scale)`` rounded to a double (NaN where
    the count is 0: the caller masks it)."""
    import numpy as np

    if len(total) and int(np.abs(total).max()) >= 2**63:
        raise OverflowError("a sum outside 64 bits")
    with np.errstate(invalid="ignore", divide="ignore"):
        quotient = total.astype(np.longdouble) / (count.astype(np.longdouble)
                                                 * np.longdouble(float(10**scale)))
    return quotient.astype(np.float64)


def round_half_away(units: np.ndarray, places: int) -> np.ndarray:
    """Integers in units of 10**-scale rounded to ``places`` fewer decimals as DuckDB's ROUND of
    a DECIMAL does (half away from zero), in the coarser units (millionths to hundredths:
    ``places`` 4)."""
    import numpy as np

    step = 10**places
    return np.sign(units) * ((np.abs(units) + step // 2) // step)


def decimal(units: np.ndarray, scale: int, valid: np.ndarray | None = None) -> pa.Array:
    """Integers in units of 10**-scale as a DECIMAL(38, scale) Arrow array (two's complement,
    16 bytes a value; ``valid``: False for a null)."""
    import numpy as np
    import pyarrow as pa

    words = np.stack([units, units >> 63], axis=1).astype(np.int64)
    validity = None if valid is None else pa.array(valid, pa.bool_()).buffers()[1]
    return pa.Array.from_buffers(pa.decimal128(38, scale), len(units),
                                 [validity, pa.py_buffer(words.tobytes())])


def round_double(values: np.ndarray, places: int) -> np.ndarray:
    """DuckDB's ROUND of a DOUBLE to ``places`` decimals (``RoundOperatorPrecision``):
    ``std::round(x * 10**places) / 10**places``, half away from zero, and ``x`` itself where
    that is not finite. ``rint`` rounds half to even: the exact halves are rounded again away
    from zero; -0.0 stays -0.0, as in C++."""
    import numpy as np

    modifier = float(10**places)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = values * modifier
        rounded = np.rint(scaled)
        off = np.subtract(rounded, scaled)
        halves = np.flatnonzero(np.abs(off, out=off) == 0.5)  # inf and nan: off is nan
        if halves.size:
            rounded[halves] = np.trunc(scaled[halves]) + np.sign(scaled[halves])
        np.divide(rounded, modifier, out=rounded)
        finite = np.isfinite(rounded)
    return rounded if bool(finite.all()) else np.where(finite, rounded, values)
