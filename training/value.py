"""What a positive outcome is worth, learned from the training rows and shipped in model meta.

Serving turns a probability into money with it: expected expansion = P(upsell) x ARR x the
typical growth of accounts that did expand; expected cross-sell ARR = P(adopt product) x the
typical ARR of that product's new terms. Medians by segment (or by product), so one huge deal
does not set everyone's expectation; an overall median covers groups with few positives.
The groups are whatever the data have (a customer's own segments, its products): the meta says
which groups have their own figure, and which fall back to the whole book (``pooled``).
"""

from __future__ import annotations

import pandas as pd

MIN_POSITIVES = 20  # fewer positives in a group than this: use the overall figure


def value_stats(task: str, train: pd.DataFrame) -> dict:
    """``{"kind": ..., "overall": x, "by": column, "groups": {group: x}, "min_positives": n,
    "pooled": [group, ...]}`` for ``task``; ``pooled`` groups (fewer than ``min_positives``
    positives) are valued with ``overall``.

    churn: the ARR at stake is the account's own ARR (kind ``arr``, nothing learned);
    upsell: median ``value / arr_at_as_of`` of positives (kind ``arr_ratio``, by segment);
    cross-sell: median ``value`` (new product ARR) of positives (kind ``amount``, by product).
    """
    if task == "churn":
        return {"kind": "arr"}
    positive = train[(train["label"] == 1) & (train["value"] > 0)]
    if task == "upsell":
        base = positive[positive["arr_at_as_of"] > 0]
        amount = base["value"] / base["arr_at_as_of"]
        return _medians("arr_ratio", amount, base.get("segment"), "segment", train.get("segment"))
    if task == "cross-sell":
        group = positive.get("candidate_product")
        return _medians("amount", positive["value"], group, "candidate_product",
                        train.get("candidate_product"))
    raise ValueError(f"unknown task {task!r}")


def _medians(kind: str, amount: pd.Series, group: pd.Series | None, by: str,
             every_group: pd.Series | None) -> dict:
    overall = float(amount.median()) if len(amount) else 0.0
    groups: dict[str, float] = {}
    if group is not None:
        counts = amount.groupby(group.astype(str), observed=True).agg(["median", "size"])
        groups = {str(g): round(float(r["median"]), 6) for g, r in counts.iterrows()
                  if r["size"] >= MIN_POSITIVES}
    seen = set() if every_group is None else set(every_group.dropna().astype(str))
    return {"kind": kind, "overall": round(overall, 6), "by": by, "groups": groups,
            "min_positives": MIN_POSITIVES, "pooled": sorted(seen - set(groups))}
