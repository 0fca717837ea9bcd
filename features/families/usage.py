"""Product usage features: volume by window and event type, trend, active users, breadth.

Events are first reduced to (account, event type, window bucket) sums, from which every
windowed count is a small conditional sum; distinct users are counted from one (account, user)
reduction as conditional counts over last-seen times. (Distinct counts or one conditional sum
per window over the raw events cost two to ten times as much on 50M events.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from features.catalogue import Cutoff, Feature, FeatureGroup, FeatureSpec, sql_text
from features.catalogue import event_type_key as type_key

FAMILY = "usage"
SOURCE = "usage_events"
TYPE_WINDOWS = (30, 90)
USER_WINDOWS = (7, 30, 90)
BREADTH_WINDOWS = (30, 90)


@dataclass(frozen=True)
class UsageWindows:
    """The windows one catalogue asks of this family, and how far back it reads events."""

    counts: tuple[int, ...]  # events_<w>d
    types: tuple[int, ...]  # events_<type>_<w>d
    event_types: tuple[str, ...]
    lookback: int

    @classmethod
    def of(cls, spec: FeatureSpec) -> UsageWindows:
        windows = spec.windows()
        lookback = max(windows + TYPE_WINDOWS + USER_WINDOWS + BREADTH_WINDOWS + (90,))
        types = tuple(w for w in TYPE_WINDOWS if w <= lookback)
        return cls(windows, types, tuple(spec.event_types), lookback)


def _f(name: str, description: str, dtype: str, window: int | None, fill=None) -> Feature:
    return Feature(name, description, FAMILY, SOURCE, dtype, window, fill=fill)  # type: ignore[arg-type]


def group(spec: FeatureSpec) -> FeatureGroup:
    plan = UsageWindows.of(spec)
    return FeatureGroup("usage", FAMILY, SOURCE, usage_features(plan), partial(usage_sql, plan))


def usage_features(plan: UsageWindows) -> tuple[Feature, ...]:
    """The family's declarations, in snapshot column order."""
    lookback = plan.lookback
    return (
        *[_f(f"events_{w}d", f"Product events in the last {w} days", "int64", w, 0)
          for w in plan.counts],
        *[
            _f(f"events_{type_key(t)}_{w}d", f"Events of type '{t}' in the last {w} days",
               "int64", w, 0)
            for t in plan.event_types for w in plan.types
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
    )


def usage_sql(plan: UsageWindows, cutoff: Cutoff) -> str:
    """The family's CTE: per-account reductions of the events, then each feature from them."""
    return f"""
SELECT a.account_id,
  {", ".join(f"a.q_{w}d AS events_{w}d" for w in plan.counts)},
  {", ".join(f"a.events_{type_key(t)}_{w}d" for t in plan.event_types for w in plan.types)},
  CASE WHEN a.q_90d - a.q_30d > 0
    THEN 2.0 * a.q_30d / (a.q_90d - a.q_30d) END AS usage_trend_30d,
  date_diff('day', CAST(a.last_time AS DATE), {cutoff.day()}) AS days_since_last_event,
  {_breadth(plan)},
  COALESCE(u.active_users_7d, 0) AS active_users_7d,
  {", ".join(f"COALESCE(u.active_users_{w}d, 0) AS active_users_{w}d"
             for w in USER_WINDOWS if w != 7)},
  COALESCE(u.active_users_change_30d, 0) AS active_users_change_30d
FROM (
{_volumes_sql(plan, cutoff)}
) a
LEFT JOIN (
{_users_sql(plan, cutoff)}
) u ON u.account_id = a.account_id
LEFT JOIN (
{_other_types_sql(plan, cutoff)}
) o ON o.account_id = a.account_id
"""


def _events(cutoff: Cutoff, since_days: int, until_days: int = 0, where: str = "") -> str:
    """The events of ``[as_of - since_days, as_of - until_days)``; rows that stand for no
    event (quantity 0) are not activity."""
    return (f"FROM usage_events e WHERE e.event_time >= {cutoff.ts(since_days)} "
            f"AND e.event_time < {cutoff.ts(until_days)} AND e.quantity > 0 {where}")


def _bucket_of(cutoff: Cutoff, windows: list[int]) -> str:
    """The shortest of ``windows`` holding the event."""
    if len(windows) == 1:
        return str(windows[0])
    return "CASE " + " ".join(
        f"WHEN e.event_time >= {cutoff.ts(w)} THEN {w}" for w in windows[:-1]
    ) + f" ELSE {windows[-1]} END"


def _volumes_sql(plan: UsageWindows, cutoff: Cutoff) -> str:
    """Per account: last event time, total and per-type event counts of every window.

    Each event falls in one bucket (the shortest window holding it); window sums then add up
    buckets over a small table instead of testing every window on every event. Events older
    than the longest per-type window only feed the totals, so they are reduced per account
    alone (a cheaper key).
    """
    buckets = sorted(set(plan.counts) | set(plan.types) | {30, 90})
    detail = max(list(plan.types) + list(BREADTH_WINDOWS) + [90])
    recent = [w for w in buckets if w <= detail]
    older = [w for w in buckets if w > detail]
    reductions = [f"""SELECT e.account_id, e.event_type, {_bucket_of(cutoff, recent)} AS bucket,
      SUM(e.quantity) AS quantity, MAX(e.event_time) AS last_time
    {_events(cutoff, since_days=detail)}
    GROUP BY e.account_id, e.event_type, {_bucket_of(cutoff, recent)}"""]
    if older:
        older_bucket = _bucket_of(cutoff, older)
        key = ["e.account_id"] + ([older_bucket] if len(older) > 1 else [])
        reductions.append(f"""SELECT e.account_id, CAST(NULL AS VARCHAR) AS event_type,
      {older_bucket} AS bucket, SUM(e.quantity) AS quantity, MAX(e.event_time) AS last_time
    {_events(cutoff, since_days=plan.lookback, until_days=detail)}
    GROUP BY {", ".join(key)}""")
    totals = ",\n    ".join(
        f"SUM(CASE WHEN b.bucket <= {w} THEN b.quantity ELSE 0 END) AS q_{w}d" for w in buckets
    )
    by_type = ",\n    ".join(
        f"SUM(CASE WHEN b.event_type = {sql_text(t)} AND b.bucket <= {w} "
        f"THEN b.quantity ELSE 0 END) AS events_{type_key(t)}_{w}d"
        for t in plan.event_types for w in plan.types
    )
    union = "\n    UNION ALL\n    ".join(reductions)
    return f"""  SELECT b.account_id, MAX(b.last_time) AS last_time,
    {totals},
    {by_type}
  FROM (
    {union}
  ) b
  GROUP BY b.account_id"""


def _breadth(plan: UsageWindows) -> str:
    """Breadth = declared types with events in the window + any other types seen there."""
    return ",\n  ".join(
        "(" + " + ".join(
            [f"CASE WHEN a.events_{type_key(t)}_{w}d > 0 THEN 1 ELSE 0 END"
             for t in plan.event_types]
            + [f"COALESCE(o.other_types_{w}d, 0)"]
        ) + f") AS feature_breadth_{w}d"
        for w in BREADTH_WINDOWS
    )


def _users_sql(plan: UsageWindows, cutoff: Cutoff) -> str:
    """Per account: distinct active users per window, from one (account, user) reduction."""
    users = ",\n  ".join(
        f"SUM(CASE WHEN last_time >= {cutoff.ts(w)} THEN 1 ELSE 0 END) AS active_users_{w}d"
        for w in USER_WINDOWS
    )
    user_lookback = max(USER_WINDOWS + (60,))
    return f"""  SELECT account_id,
  {users},
  SUM(CASE WHEN last_time >= {cutoff.ts(30)} THEN 1 ELSE 0 END)
    - SUM(CASE WHEN last_time_before_30d >= {cutoff.ts(60)} THEN 1 ELSE 0 END)
    AS active_users_change_30d
  FROM (
    SELECT e.account_id, e.user_id, MAX(e.event_time) AS last_time,
      MAX(CASE WHEN e.event_time < {cutoff.ts(30)} THEN e.event_time END) AS last_time_before_30d
    {_events(cutoff, since_days=user_lookback)}
    GROUP BY e.account_id, e.user_id
  ) per_user GROUP BY account_id"""


def _other_types_sql(plan: UsageWindows, cutoff: Cutoff) -> str:
    """Per account: event types outside the declared ones seen in each breadth window."""
    declared = ", ".join(sql_text(t) for t in plan.event_types)
    other_types = ",\n    ".join(
        f"SUM(CASE WHEN last_time >= {cutoff.ts(w)} THEN 1 ELSE 0 END) AS other_types_{w}d"
        for w in BREADTH_WINDOWS
    )
    undeclared = _events(cutoff, since_days=max(BREADTH_WINDOWS),
                         where=f"AND e.event_type NOT IN ({declared})")
    return f"""  SELECT account_id,
    {other_types}
  FROM (
    SELECT e.account_id, e.event_type, MAX(e.event_time) AS last_time
    {undeclared}
    GROUP BY e.account_id, e.event_type
  ) per_type GROUP BY account_id"""
