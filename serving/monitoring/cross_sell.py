"""Cross-sell's probabilities for the monitor: one per (account, offered product not held).

The score history keeps each account's next best product and its probability only; drift per
product and performance per product and pooled need every pair a run scored. So the run's
snapshot is scored again by the cross-sell model version the run recorded (``_scoring.json``),
for every product that model offers and the account did not hold at as_of (the daily run's
rule, ``features.book.holdings_sql``), and the result is checked against the history: each
account's largest pair probability must be the next-best probability the run recorded.

The pairs are exactly the rows ``features.labels.cross_sell_sql`` labels (pairs not held at
as_of), so realised performance is computed on what the run scored, nothing more.
"""

from __future__ import annotations

import os
from datetime import date

import numpy as np
import pandas as pd

from features.catalogue import ACCOUNT_ID, AS_OF, CANDIDATE_PRODUCT
from serving.valuation import MIN_CROSS_SELL_PROBABILITY, ValueModel

PRODUCT = "product"
P = "p"
RECORDED = "next_best_product_probability"
#: A re-scored probability within this of the recorded one is the same score (float noise).
SAME_SCORE = 1e-9


def offered(model) -> list[str]:
    """The products the cross-sell model offers (its candidate_product levels)."""
    return list(model.model.schema["categorical"].get(CANDIDATE_PRODUCT, []))


def held_pairs(tables, day: date) -> set[tuple[str, str]]:
    """(account_id, product) pairs with a term in force at ``day``."""
    from features.book import holdings_sql
    from features.catalogue import Cutoff

    held = tables.sql(holdings_sql(Cutoff(day)))
    return set(zip(held[ACCOUNT_ID].astype(str), held[PRODUCT].astype(str), strict=True))


def pair_scores(model, snapshot: pd.DataFrame, held: set[tuple[str, str]]) -> pd.DataFrame:
    """``account_id, segment, product, p`` for every (account, offered product not in
    ``held``) of one snapshot, by account then product."""
    m = model.model
    x = m.matrix(snapshot)
    j = m.features.index(CANDIDATE_PRODUCT)
    ids = snapshot[ACCOUNT_ID].astype(str).to_numpy()
    segment = (snapshot["segment"].astype(object).where(snapshot["segment"].notna(), None)
               .to_numpy() if "segment" in snapshot.columns else np.full(len(ids), None))
    frames = []
    for code, product in enumerate(offered(model)):
        candidate = x.copy()
        candidate[:, j] = code
        p = m.probability_matrix(candidate, threads=os.cpu_count() or 1)
        keep = np.array([(a, product) not in held for a in ids], dtype=bool)
        frames.append(pd.DataFrame({ACCOUNT_ID: ids[keep], "segment": segment[keep],
                                    PRODUCT: product, P: p[keep]}))
    if not frames:
        return pd.DataFrame(columns=[ACCOUNT_ID, "segment", PRODUCT, P])
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values([ACCOUNT_ID, PRODUCT], kind="stable", ignore_index=True)


def stacked_pair_scores(model, frame: pd.DataFrame, tables) -> pd.DataFrame:
    """``pair_scores`` of several stacked snapshots (the training window), each with the
    holdings of its own as_of."""
    parts = [pair_scores(model, part, held_pairs(tables, pd.Timestamp(day).date()))
             .assign(**{AS_OF: day}) for day, part in frame.groupby(AS_OF, sort=True)]
    return pd.concat(parts, ignore_index=True) if parts else pair_scores(model, frame, set())


def next_best_gap(pairs: pd.DataFrame, run: pd.DataFrame) -> float:
    """The largest difference between an account's best re-scored pair and the next-best
    probability the run recorded (0 when they agree; NaN when the run recorded none)."""
    if RECORDED not in run.columns:
        return float("nan")
    best = pairs.groupby(ACCOUNT_ID, sort=False)[P].max()
    recorded = run.set_index(run[ACCOUNT_ID].astype(str))[RECORDED].astype(float)
    both = pd.concat([best.rename("best"), recorded.rename("recorded")], axis=1)
    both = both[both["recorded"].notna() | both["best"].notna()]
    if both.empty or both["recorded"].isna().all():
        return float("nan")
    gap = (both["best"] - both["recorded"]).abs()
    return float(gap.fillna(np.inf).max())  # a pair on one side only is a mismatch


def exposure(model, products: pd.Series) -> np.ndarray:
    """What an adoption of each row's product is worth as the model learned it (the value
    the cross-sell ARR of a play is priced with): the revenue-capture ranking's weight."""
    return ValueModel.from_meta(model.meta).per_row(products.to_numpy())


def offer_shares(pairs: pd.DataFrame, accounts: int) -> dict[str, float]:
    """Share of ``accounts`` whose next best product is likely enough for a cross-sell play
    (``MIN_CROSS_SELL_PROBABILITY``), unlikely, or none (every product held). Stacked
    snapshots (an ``as_of`` column) count an account once per snapshot."""
    keys = [ACCOUNT_ID, AS_OF] if AS_OF in pairs.columns else [ACCOUNT_ID]
    best = pairs.groupby(keys, sort=False)[P].max().to_numpy(float)
    n = max(accounts, 1)
    likely = int((best >= MIN_CROSS_SELL_PROBABILITY).sum())
    return {"likely": likely / n, "unlikely": (len(best) - likely) / n,
            "none": (accounts - len(best)) / n}
