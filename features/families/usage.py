"""Product usage features: volume by window and event type, trend, active users, breadth.

The events of the longest window are reduced once per (account, event type) and once per
(account, user), so distinct counts become cheap conditional counts over last-seen times.
"""

from __future__ import annotations

from features.catalogue import Feature, FeatureGroup, FeatureSpec, Snapshot

FAMILY = "usage"
SOURCE = "usage_events"
TYPE_WINDOWS = (30, 90)
USER_WINDOWS = (7, 30, 90)
BREADTH_WINDOWS = (30, 90)


def _f(name: str, description: str, dtype: str, window: int | None, fill=None) -> Feature:
    return Feature(name, description, FAMILY, SOURCE, dtype, window, fill=fill)  # type: ignore[arg-type]


def group(spec: FeatureSpec) -> FeatureGroup:
    windows = spec.windows()
    lookback = max(windows + TYPE_WINDOWS + USER_WINDOWS + BREADTH_WINDOWS + (90,))
    type_windows = [w for w in TYPE_WINDOWS if w <= lookback]
    features = [
        *[_f(f"events_{w}d", f"Product events in the last {w} days", "int64", w, 0)
          for w in windows],
        *[
            _f(f"events_{t}_{w}d", f"Events of type '{t}' in the last {w} days",
               "int64", w, 0)
            for t in spec.event_types for w in type_windows
        ],
        _f("usage_trend_30d", "Daily events in the last 30 days relative to the 60 days before "
           "(1 = flat, below 1 = declining)", "float64", 90),
        _f("days_since_last_event", f"Days since the last product event (capped at {lookback})",
           "int64", lookback, lookback),
        *[_f(f"active_users_{w}d", f"Users active in the last {w} days", "int64", w, 0)
          for w in USER_WINDOWS],
        _f("active_users_change_30d", "Active users in the last 30 days minus the 30 days before",
           "int64", 60, 0),
        *[_f(f"feature_breadth_{w}d", f"Distinct product features used in the last {w} days",
             "int64", w, 0) for w in BREADTH_WINDOWS],
    ]

    def cte(s: Snapshot) -> str:
        def since(w: int) -> str:
            return s.ts(w)

        type_sums = ",\n    ".join(
            f"SUM(CASE WHEN e.event_time >= {since(w)} THEN e.quantity ELSE 0 END) AS q_{w}d"
            for w in sorted(set(windows) | {30, 90})
        )
        total_cols = ",\n  ".join(f"SUM(q_{w}d) AS events_{w}d" for w in windows)
        by_type = ",\n  ".join(
            f"SUM(CASE WHEN event_type = '{t}' THEN q_{w}d ELSE 0 END) AS events_{t}_{w}d"
            for t in spec.event_types for w in type_windows
        )
        breadth = ",\n  ".join(
            f"SUM(CASE WHEN last_time >= {since(w)} THEN 1 ELSE 0 END) AS feature_breadth_{w}d"
            for w in BREADTH_WINDOWS
        )
        users = ",\n  ".join(
            f"SUM(CASE WHEN last_time >= {since(w)} THEN 1 ELSE 0 END) AS active_users_{w}d"
            for w in USER_WINDOWS
        )
        return f"""
WITH ev AS (
  SELECT e.account_id, e.user_id, e.event_type, e.event_time, e.quantity
  FROM usage_events e
  WHERE e.event_time >= {since(lookback)} AND e.event_time < {s.ts()}
), per_type AS (
  SELECT e.account_id, e.event_type, MAX(e.event_time) AS last_time,
    {type_sums}
  FROM ev e GROUP BY e.account_id, e.event_type
), per_user AS (
  SELECT e.account_id, e.user_id, MAX(e.event_time) AS last_time,
    MAX(CASE WHEN e.event_time < {since(30)} THEN e.event_time END) AS last_time_before_30d
  FROM ev e GROUP BY e.account_id, e.user_id
), types AS (
  SELECT account_id,
  {total_cols},
  {by_type},
  CASE WHEN SUM(q_90d) - SUM(q_30d) > 0
    THEN 2.0 * SUM(q_30d) / (SUM(q_90d) - SUM(q_30d)) END AS usage_trend_30d,
  date_diff('day', CAST(MAX(last_time) AS DATE), {s.day()}) AS days_since_last_event,
  {breadth}
  FROM per_type GROUP BY account_id
), users AS (
  SELECT account_id,
  {users},
  SUM(CASE WHEN last_time >= {since(30)} THEN 1 ELSE 0 END)
    - SUM(CASE WHEN last_time_before_30d >= {since(60)} THEN 1 ELSE 0 END)
    AS active_users_change_30d
  FROM per_user GROUP BY account_id
)
SELECT types.*, {", ".join(f"users.active_users_{w}d" for w in USER_WINDOWS)},
  users.active_users_change_30d
FROM types JOIN users ON users.account_id = types.account_id
"""

    return FeatureGroup("usage", FAMILY, SOURCE, tuple(features), cte)
