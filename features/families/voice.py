"""Voice of the customer: Net Promoter Score level, trend and detractors."""

from __future__ import annotations

from features.catalogue import AS_OF, At, Feature, FeatureGroup, FeatureSpec, GridCutoff

FAMILY = "voice"
SOURCE = "nps_responses"


def _f(name: str, description: str, dtype: str, window: int | None, fill=None) -> Feature:
    return Feature(name, description, FAMILY, SOURCE, dtype, window, fill=fill)  # type: ignore[arg-type]


def group(spec: FeatureSpec) -> FeatureGroup:
    features = (
        _f("nps_last", "Most recent NPS answer (0-10)", "float64", None),
        _f("nps_180d", "Average NPS answer in the last 180 days", "float64", 180),
        _f("nps_trend_180d", "Average NPS of the last 180 days minus the 180 days before",
           "float64", 360),
        _f("nps_responses_180d", "NPS answers in the last 180 days", "int64", 180, 0),
        _f("nps_detractors_180d", "NPS answers of 0-6 (detractors) in the last 180 days",
           "int64", 180, 0),
        _f("detractor_flag", "The most recent NPS answer was a detractor's (0-6) (1 = yes)",
           "int64", None),
    )

    def cte(s: At) -> str:
        at, d180, d360 = s.ts(), s.ts(180), s.ts(360)
        return f"""
SELECT {s.key('agg')}agg.account_id, CAST(latest.score AS DOUBLE) AS nps_last, agg.nps_180d,
  agg.nps_180d - agg.nps_prior_180d AS nps_trend_180d,
  agg.nps_responses_180d, agg.nps_detractors_180d,
  CASE WHEN latest.score <= 6 THEN 1 ELSE 0 END AS detractor_flag
FROM (
  SELECT {s.key()}n.account_id,
    AVG(CASE WHEN n.responded_at >= {d180} THEN CAST(n.score AS DOUBLE) END) AS nps_180d,
    AVG(CASE WHEN n.responded_at >= {d360} AND n.responded_at < {d180}
      THEN CAST(n.score AS DOUBLE) END) AS nps_prior_180d,
    SUM(CASE WHEN n.responded_at >= {d180} THEN 1 ELSE 0 END) AS nps_responses_180d,
    SUM(CASE WHEN n.responded_at >= {d180} AND n.score <= 6 THEN 1 ELSE 0 END)
      AS nps_detractors_180d
  FROM nps_responses n{s.dates()} WHERE n.responded_at < {at} GROUP BY {s.key()}n.account_id
) agg
JOIN (
  SELECT {s.key('ranked')}account_id, score FROM (
    SELECT {s.key()}n.account_id, n.score, ROW_NUMBER() OVER (
      PARTITION BY {s.key()}n.account_id ORDER BY n.responded_at DESC, n.score) AS rank
    FROM nps_responses n{s.dates()} WHERE n.responded_at < {at}
  ) ranked WHERE rank = 1
) latest ON latest.account_id = agg.account_id{s.same('latest', 'agg')}
"""

    return FeatureGroup("voice", FAMILY, SOURCE, features, cte, grid_sql)


def grid_sql(dates: str) -> str:
    """Every date of the table ``dates`` at once, as a running formulation. The latest answer
    before a date is the one whose instant and the account's next answer's enclose it
    (``instant < as_of <= next``; of answers at one instant the lowest score, as the single-date
    ranking orders them): a range join of the dates with those intervals gives one row per
    (date, account with an answer before it). Only the answers of the 360 days before each date
    are joined to it for the windows. Joining every earlier answer to every date and ranking
    them was three quarters of this family's grid cost."""
    s = GridCutoff(dates)
    at, d180, d360 = s.ts(), s.ts(180), s.ts(360)
    return f"""
WITH latest AS (
  SELECT g.{AS_OF}, l.account_id, l.score FROM (
    SELECT account_id, responded_at, MIN(score) AS score, COALESCE(LEAD(responded_at) OVER (
      PARTITION BY account_id ORDER BY responded_at), TIMESTAMP 'infinity') AS next_at
    FROM nps_responses GROUP BY account_id, responded_at
  ) l JOIN {dates} g ON l.responded_at < g.{AS_OF} AND l.next_at >= g.{AS_OF}
), agg AS (
  SELECT {s.key()}n.account_id,
    AVG(CASE WHEN n.responded_at >= {d180} THEN CAST(n.score AS DOUBLE) END) AS nps_180d,
    AVG(CASE WHEN n.responded_at < {d180} THEN CAST(n.score AS DOUBLE) END) AS nps_prior_180d,
    SUM(CASE WHEN n.responded_at >= {d180} THEN 1 ELSE 0 END) AS nps_responses_180d,
    SUM(CASE WHEN n.responded_at >= {d180} AND n.score <= 6 THEN 1 ELSE 0 END)
      AS nps_detractors_180d
  FROM nps_responses n JOIN {dates} g ON n.responded_at < {at} AND n.responded_at >= {d360}
  GROUP BY {s.key()}n.account_id
)
SELECT latest.{AS_OF}, latest.account_id, CAST(latest.score AS DOUBLE) AS nps_last,
  agg.nps_180d, agg.nps_180d - agg.nps_prior_180d AS nps_trend_180d,
  COALESCE(agg.nps_responses_180d, 0) AS nps_responses_180d,
  COALESCE(agg.nps_detractors_180d, 0) AS nps_detractors_180d,
  CASE WHEN latest.score <= 6 THEN 1 ELSE 0 END AS detractor_flag
FROM latest LEFT JOIN agg ON agg.account_id = latest.account_id AND agg.{AS_OF} = latest.{AS_OF}
"""
