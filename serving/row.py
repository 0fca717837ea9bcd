"""The scored-account row, declared once: its columns in order, what each holds, and the
reasons columns of a batch file.

Everything that shapes a scored account is generated from `ROW`: the API's items and CSV
(`serving.results`), the API's `AccountScore` schema (`serving.schemas`) and the batch
Parquet schema (`serving.batch.OUTPUT_SCHEMA`). A new column is added here, and the scorer
fills it (`serving.scoring`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from serving.registry import CROSS_SELL
from serving.valuation import PLAYS, RISK_TIERS

Kind = Literal["text", "number", "probability"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind  # probabilities are numbers the API rounds to 6 decimals
    description: str | None = None
    values: tuple[str, ...] = ()  # the closed set of a text column, if it has one


ROW: tuple[Column, ...] = (
    Column("account_id", "text"),
    Column("name", "text"),
    Column("owner", "text"),
    Column("segment", "text"),
    Column("arr", "number", "Annual recurring revenue at as_of."),
    Column("churn_probability", "probability", "P(churn within the horizon)."),
    Column("risk_tier", "text", values=tuple(tier for tier, _ in RISK_TIERS)),
    Column("arr_at_risk", "number", "ARR x churn probability."),
    Column("upsell_probability", "probability", "P(expansion within the horizon)."),
    Column("expected_expansion", "number",
           "Upsell probability x ARR x the segment's typical expansion share."),
    Column("next_best_product", "text", "Likeliest product not yet held."),
    Column("next_best_product_probability", "probability"),
    Column("expected_cross_sell_arr", "number",
           "Next-best-product probability x that product's typical new ARR."),
    Column("play", "text", values=tuple(PLAYS)),
)
NAMES = tuple(c.name for c in ROW)
TEXT = tuple(c.name for c in ROW if c.kind == "text")
NUMBERS = tuple(c.name for c in ROW if c.kind != "text")
PROBABILITIES = tuple(c.name for c in ROW if c.kind == "probability")
#: A batch file's reasons, one JSON column per model (the API nests them under `reasons`).
REASON_COLUMNS = {"churn": "churn_reasons", "upsell": "upsell_reasons",
                  CROSS_SELL: "cross_sell_reasons"}
