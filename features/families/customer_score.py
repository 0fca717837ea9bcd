"""The customer's own health score (the optional ``health_scores`` table), read point-in-time.

Two uses: training compares it with the model on the same rows (``latest_scores``, always when
the table has rows), and, with the ``customer_score_as_feature`` setting, its latest value
becomes a feature family (``group``; only in the catalogue when the setting is on and the
table has rows, so the catalogue version of a build without it is unchanged).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from features.catalogue import ACCOUNT_ID, AS_OF, At, Feature, FeatureGroup, FeatureSpec

if TYPE_CHECKING:
    import pandas as pd

    from features.sources import RawTables

FAMILY = "customer"
SOURCE = "health_scores"
SCORE = "customer_health_score"
#: Whether a build's data have any customer score (both engines: an absent optional table is
#: an empty typed table).
HAS_SCORES_SQL = f"SELECT COUNT(*) FROM {SOURCE} WHERE score IS NOT NULL"


def group(spec: FeatureSpec) -> FeatureGroup:
    features = (
        Feature(SCORE, "The latest health score of the customer's own customer-success tool "
                "(on its own scale)", FAMILY, SOURCE, "float64"),
        Feature("customer_health_score_age_days", "Days since that score was computed",
                FAMILY, SOURCE, "int64"),
    )

    def cte(s: At) -> str:
        return f"""
SELECT {s.key('ranked')}account_id, score AS {SCORE}, age_days AS customer_health_score_age_days
FROM (
  SELECT {s.key()}h.account_id, h.score,
    date_diff('day', CAST(h.scored_at AS DATE), {s.day()}) AS age_days, ROW_NUMBER() OVER (
    PARTITION BY {s.key()}h.account_id ORDER BY h.scored_at DESC, h.score) AS rank
  FROM health_scores h{s.dates()} WHERE h.scored_at < {s.ts()} AND h.score IS NOT NULL
) ranked WHERE rank = 1
"""

    return FeatureGroup("customer_score", FAMILY, SOURCE, features, cte)


def latest_scores(tables: RawTables, rows: pd.DataFrame) -> pd.Series:
    """For each (account_id, as_of) row, the latest non-null score stamped strictly before
    as_of (NaN: none), index aligned with ``rows``. Nothing at or after as_of is read."""
    import pandas as pd

    keys = pd.DataFrame({ACCOUNT_ID: rows[ACCOUNT_ID].astype(str).to_numpy(),
                         "at": pd.to_datetime(rows[AS_OF]).to_numpy(dtype="datetime64[us]"),
                         "row": range(len(rows))})
    con = tables.con  # not a cursor: in-memory tables are registered on this connection
    try:
        con.register("_score_keys", keys)
        found = con.execute(f"""
SELECT k.row, h.score FROM _score_keys k
ASOF LEFT JOIN (SELECT account_id, scored_at, score FROM {SOURCE} WHERE score IS NOT NULL) h
  ON k.{ACCOUNT_ID} = h.account_id AND k.at > h.scored_at
ORDER BY k.row""").df()
    finally:
        con.unregister("_score_keys")
    return pd.Series(found["score"].to_numpy(dtype="float64"), index=rows.index, name=SCORE)
