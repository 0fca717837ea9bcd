"""Account hierarchy features: how much the rest of the corporate family spends."""

from __future__ import annotations

from features.catalogue import At, Feature, FeatureGroup, FeatureSpec, exact
from features.terms import in_force

FAMILY = "hierarchy"
SOURCE = "accounts+subscriptions"


def group(spec: FeatureSpec) -> FeatureGroup:
    def f(name: str, description: str, dtype: str) -> Feature:
        return Feature(name, description, FAMILY, SOURCE, dtype)  # type: ignore[arg-type]

    features = (
        f("has_parent", "The account belongs to a parent account (1 = yes)", "int64"),
        f("parent_arr", "ARR of the parent account", "float64"),
        f("sibling_arr", "ARR of the other accounts under the same parent", "float64"),
        f("child_accounts", "Number of subsidiary accounts under this one", "int64"),
        f("children_arr", "ARR of the subsidiary accounts under this one", "float64"),
    )

    def cte(s: At) -> str:
        return f"""
WITH own_arr AS (
  SELECT {s.key()}s.account_id, 12 * SUM({exact('s.mrr')}) AS arr FROM subscriptions s{s.dates()}
  WHERE {in_force(s.ts())} GROUP BY {s.key()}s.account_id
), known AS (
  SELECT {s.key()}account_id, parent_account_id FROM accounts{s.dates()} WHERE created_at < {s.ts()}
), family AS (
  SELECT {s.key('k')}k.parent_account_id, COUNT(*) AS n, SUM(COALESCE(o.arr, 0)) AS arr
  FROM known k LEFT JOIN own_arr o ON o.account_id = k.account_id{s.same('o', 'k')}
  WHERE k.parent_account_id IS NOT NULL GROUP BY {s.key('k')}k.parent_account_id
)
SELECT {s.key('k')}k.account_id,
  CASE WHEN k.parent_account_id IS NULL THEN 0 ELSE 1 END AS has_parent,
  CASE WHEN k.parent_account_id IS NOT NULL THEN ROUND(COALESCE(p.arr, 0), 2) END AS parent_arr,
  CASE WHEN k.parent_account_id IS NOT NULL
    THEN ROUND(COALESCE(f.arr, 0) - COALESCE(o.arr, 0), 2) END AS sibling_arr,
  COALESCE(c.n, 0) AS child_accounts,
  ROUND(COALESCE(c.arr, 0), 2) AS children_arr
FROM known k
LEFT JOIN own_arr o ON o.account_id = k.account_id{s.same('o', 'k')}
LEFT JOIN own_arr p ON p.account_id = k.parent_account_id{s.same('p', 'k')}
LEFT JOIN family f ON f.parent_account_id = k.parent_account_id{s.same('f', 'k')}
LEFT JOIN family c ON c.parent_account_id = k.account_id{s.same('c', 'k')}
"""

    return FeatureGroup("hierarchy", FAMILY, SOURCE, features, cte)
