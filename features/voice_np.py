"""Voice's values for every date of a grid chunk, from the NPS answers in numpy.

``voice.group``'s SQL gives, per date, one row per account with an answer before the date: the
latest answer's score (latest instant; of answers at one instant the lowest score, as its
ranking orders them), averages and counts of the answers in the 180 days before the date and
in the 180 days before those. Every window boundary is a midnight, so each answer's day number
decides the windows; the latest answer is found on the exact instants. The scores are integers
(the contract: 0-10), so the sums of their doubles are exact in any order, and DuckDB's AVG of
a DOUBLE is that sum divided by the count in doubles: numpy's division of the same numbers.

The answers are read once per grid, sorted by day (for the windows' counts and sums by
``bincount``) and, apart, by account then instant (for the latest answer: one binary search per
account and date). Answers the form does not cover (a null score, account or instant where the
contract forbids one, a score that is not a small integer) make the loader give None, and the
grid runs the family's SQL instead. ``tests/features/test_voice_np.py`` compares both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from features import account_days
from features.catalogue import ACCOUNT_ID, FeatureGroup

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pyarrow as pa

EPOCH = date(1970, 1, 1)
#: Scores whose absolute values sum below this are summed exactly in doubles.
EXACT_SUM = 2**52
WINDOW = 180  # nps_180d's window; the prior window is the 180 days before it
DETRACTOR = 6  # a score of at most 6


@dataclass
class Answers:
    """The NPS answers as arrays: by day (``day``, ``code``, ``score``) and, apart, by account,
    instant and descending score (``key``: account and day; ``last_score``)."""

    accounts: pa.Array  # account ids; the codes index them
    day: np.ndarray
    code: np.ndarray
    score: np.ndarray  # float64, integral
    key: np.ndarray  # account_days.keys(code, day), sorted
    last_score: np.ndarray  # the score of each ``key`` row


def load(con: duckdb.DuckDBPyConnection) -> Answers | None:
    """The answers with an account and an instant (the rows the family's SQL can see); None
    where a score is null or not an integer whose sums are exact in doubles."""
    import numpy as np
    import pyarrow.compute as pc

    fits = con.sql(
        "SELECT COUNT(*) FILTER (WHERE score IS NULL OR score <> CAST(score AS BIGINT)) = 0 "
        f"AND COALESCE(SUM(ABS(CAST(score AS DOUBLE))) < {EXACT_SUM}, true) "
        "FROM nps_responses WHERE account_id IS NOT NULL AND responded_at IS NOT NULL"
    ).fetchall()[0][0]
    if not fits:
        return None
    table = con.sql(
        "SELECT account_id, CAST(CAST(responded_at AS DATE) - DATE '1970-01-01' AS BIGINT) AS day,"
        " epoch_us(responded_at) AS instant, CAST(score AS BIGINT) AS score FROM nps_responses "
        "WHERE account_id IS NOT NULL AND responded_at IS NOT NULL").to_arrow_table()
    encoded = pc.dictionary_encode(table[ACCOUNT_ID].combine_chunks())
    code = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    day = table["day"].to_numpy().astype(np.int64)
    instant = table["instant"].to_numpy().astype(np.int64)
    score = table["score"].to_numpy().astype(np.int64)
    by_day = np.argsort(day, kind="stable")
    # latest first in a descending sort is last here: instant ascending, then score descending
    by_account = np.lexsort((-score, instant, code))
    return Answers(encoded.dictionary, day[by_day], code[by_day],
                   score[by_day].astype(np.float64),
                   account_days.keys(code[by_account], day[by_account]),
                   score[by_account].astype(np.float64))


def rows(answers: Answers, group: FeatureGroup, dates: list[date], day_column: str
         ) -> pa.Table:
    """The family's rows for each date (``day_column``: its index in ``dates``), one per
    account with an answer before it, with the SQL's values."""
    import numpy as np
    import pyarrow as pa

    n = len(answers.accounts)
    parts: dict[str, list[np.ndarray]] = {}

    def put(name: str, value: np.ndarray) -> None:
        parts.setdefault(name, []).append(value)

    for i, as_of in enumerate(dates):
        t = (as_of - EPOCH).days
        last, found = account_days.last_before(answers.key, n, t)  # the last answer before t
        accounts = np.flatnonzero(found)

        def window(first: int, stop: int, accounts: np.ndarray = accounts
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            """Answers, their sum and detractors per account, of days ``first`` to ``stop``."""
            part = slice(np.searchsorted(answers.day, first), np.searchsorted(answers.day, stop))
            code, score = answers.code[part], answers.score[part]
            return (np.bincount(code, minlength=n)[accounts],
                    np.bincount(code, score, minlength=n)[accounts],
                    np.bincount(code[score <= DETRACTOR], minlength=n)[accounts])

        count, total, detractors = window(t - WINDOW, t)
        prior_count, prior_total, _ = window(t - 2 * WINDOW, t - WINDOW)
        latest = answers.last_score[last[accounts]]
        put("_day", np.full(len(accounts), i, np.int32))
        put("_code", accounts)
        put("nps_last", latest)
        put("count", count)
        put("total", total)
        put("prior_count", prior_count)
        put("prior_total", prior_total)
        put("nps_detractors_180d", detractors)
        put("detractor_flag", (latest <= DETRACTOR).astype(np.int64))
    v = {k: np.concatenate(p) for k, p in parts.items()}
    with np.errstate(invalid="ignore", divide="ignore"):
        average = v["total"] / v["count"]
        prior = v["prior_total"] / v["prior_count"]
    no_average, no_prior = v["count"] == 0, v["prior_count"] == 0
    columns = {
        day_column: pa.array(v["_day"]),
        ACCOUNT_ID: pa.DictionaryArray.from_arrays(pa.array(v["_code"]), answers.accounts),
        "nps_last": pa.array(v["nps_last"]),
        "nps_180d": pa.array(average, mask=no_average),
        "nps_trend_180d": pa.array(average - prior, mask=no_average | no_prior),
        "nps_responses_180d": pa.array(v["count"].astype(np.int64)),
        "nps_detractors_180d": pa.array(v["nps_detractors_180d"].astype(np.int64)),
        "detractor_flag": pa.array(v["detractor_flag"]),
    }
    return pa.table({name: columns[name] for name in [day_column, ACCOUNT_ID, *group.names]})
