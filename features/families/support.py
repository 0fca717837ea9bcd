"""Support features: ticket load, escalations, open backlog, resolution time and CSAT.

A ticket is known from opened_at; its resolution (closed_at) and CSAT only from closed_at.
"""

from __future__ import annotations

from features.catalogue import At, Feature, FeatureGroup, FeatureSpec, exact

FAMILY = "support"
SOURCE = "support_tickets"


def _f(name: str, description: str, dtype: str, window: int | None, fill=None) -> Feature:
    return Feature(name, description, FAMILY, SOURCE, dtype, window, fill=fill)  # type: ignore[arg-type]


def group(spec: FeatureSpec) -> FeatureGroup:
    windows = spec.windows(at_least=30)
    lookback = max(windows + (180,))
    features = [
        *[_f(f"tickets_{w}d", f"Support tickets opened in the last {w} days", "int64", w, 0)
          for w in windows],
        *[_f(f"escalations_{w}d", f"Escalated tickets opened in the last {w} days", "int64", w, 0)
          for w in windows],
        _f("urgent_tickets_90d", "High or urgent priority tickets opened in the last 90 days",
           "int64", 90, 0),
        _f("open_tickets", "Tickets still open", "int64", None, 0),
        _f("hours_to_resolve_90d", "Average hours to resolve tickets closed in the last 90 days",
           "float64", 90),
        _f("csat_180d", "Average satisfaction (1-5) on tickets closed in the last 180 days",
           "float64", 180),
    ]

    def cte(s: At) -> str:
        at = s.ts()
        counts = ",\n  ".join(
            [f"SUM(CASE WHEN t.opened_at >= {s.ts(w)} THEN 1 ELSE 0 END) AS tickets_{w}d"
             for w in windows]
            + [f"SUM(CASE WHEN t.opened_at >= {s.ts(w)} AND t.escalated THEN 1 ELSE 0 END) "
               f"AS escalations_{w}d" for w in windows]
        )
        closed_90 = f"t.closed_at >= {s.ts(90)} AND t.closed_at < {at}"
        return f"""
SELECT {s.key()}t.account_id,
  {counts},
  SUM(CASE WHEN t.opened_at >= {s.ts(90)} AND t.priority IN ('high', 'urgent') THEN 1 ELSE 0 END)
    AS urgent_tickets_90d,
  SUM(CASE WHEN t.closed_at IS NULL OR t.closed_at >= {at} THEN 1 ELSE 0 END) AS open_tickets,
  AVG(CASE WHEN {closed_90} THEN date_diff('second', t.opened_at, t.closed_at) END) / 3600.0
    AS hours_to_resolve_90d,
  AVG(CASE WHEN t.closed_at >= {s.ts(180)} AND t.closed_at < {at} THEN {exact('t.csat')} END)
    AS csat_180d
FROM support_tickets t{s.dates()}
WHERE t.opened_at < {at}
  AND (t.opened_at >= {s.ts(lookback)} OR t.closed_at IS NULL OR t.closed_at >= {s.ts(lookback)})
GROUP BY {s.key()}t.account_id
"""

    return FeatureGroup("support", FAMILY, SOURCE, tuple(features), cte)
