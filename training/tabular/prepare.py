"""From a raw table and its column inferences to the model frame: floats and categoricals.

`Preparation.fit` fixes everything learnt from the training table (categorical levels, which
flag value is 1, the sum groups) so that `transform` turns any later raw frame into exactly
the same columns: a level not seen in training becomes missing instead of shifting codes.

Sum features (``add_sums``, on by default): numeric columns whose names end in the same word
(``total_day_minutes``, ``total_eve_minutes``, ... -> ``sum_minutes``) get a row-wise sum. Such
groups are usually parts of one total (usage by time of day, spend by channel); a tree needs
many splits to rebuild a sum from its parts, a linear model is unaffected. Only groups of two or
more, only words of letters (``x_1``, ``x_2`` are not parts of anything), no dates, no flags; a
missing part makes the sum missing. The rule is generic, not tuned to any table, and can be
switched off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from training.models import FeatureSchema
from training.tabular.columns import (
    FLAG_PAIRS,
    ColumnInference,
    LabelMapping,
    blank_to_na,
    dates_to_days,
    infer_label,
    is_date_column,
    label_values,
    parse_numbers,
    token,
)

SUM_PREFIX = "sum_"


@dataclass(frozen=True)
class Preparation:
    """The fitted preparation: which raw column becomes which model column, and how."""

    numeric: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    flags: dict[str, tuple[str, str]] = field(default_factory=dict)  # (token for 1, for 0)
    categorical: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sums: dict[str, tuple[str, ...]] = field(default_factory=dict)
    label: LabelMapping | None = None

    @classmethod
    def fit(
        cls, df: pd.DataFrame, inferences: list[ColumnInference], add_sums: bool = True
    ) -> Preparation:
        """Learn the preparation from the training table and its inferences."""
        numeric, dates, flags, categorical = [], [], {}, {}
        label = None
        for inf in inferences:
            s = df[inf.name]
            if inf.kind == "label":
                label = infer_label(s)
            elif inf.kind == "flag":
                flags[inf.name] = _flag_tokens(s)
            elif inf.kind == "numeric":
                (dates if is_date_column(s) else numeric).append(inf.name)
            elif inf.kind == "categorical":
                levels = blank_to_na(s).dropna().map(str).unique()
                categorical[inf.name] = tuple(sorted(levels))
        sums = sum_groups(numeric, taken={i.name for i in inferences}) if add_sums else {}
        return cls(tuple(numeric), tuple(dates), flags, categorical, sums, label)

    @property
    def schema(self) -> FeatureSchema:
        """The model frame's columns: numerics (numbers, dates, flags, sums), then categoricals."""
        numeric = [*self.numeric, *self.dates, *self.flags, *self.sums]
        return FeatureSchema(numeric, {k: list(v) for k, v in self.categorical.items()})

    @property
    def inputs(self) -> list[str]:
        """Raw columns a frame must have to be transformed."""
        return [*self.numeric, *self.dates, *self.flags, *self.categorical]

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """The model frame for a raw table (extra columns ignored, e.g. the label or the id)."""
        missing = [c for c in self.inputs if c not in df.columns]
        if missing:
            raise ValueError(f"the table lacks {len(missing)} column(s) the model was trained "
                             f"on: {', '.join(map(repr, missing[:20]))}")
        out: dict[str, Any] = {}
        for col in self.numeric:
            out[col] = parse_numbers(df[col])[0].to_numpy()
        for col in self.dates:
            out[col] = dates_to_days(df[col]).to_numpy()
        for col, (one, zero) in self.flags.items():
            out[col] = _flag_values(df[col], one, zero)
        for new, parts in self.sums.items():
            out[new] = np.sum([out[p] for p in parts], axis=0)  # NaN if a part is missing
        for col, levels in self.categorical.items():
            text = blank_to_na(df[col]).map(lambda v: None if v is None else str(v))
            out[col] = pd.Categorical(text, categories=list(levels))
        frame = pd.DataFrame(out, index=df.index)
        return frame[self.schema.columns]

    def labels(self, df: pd.DataFrame) -> np.ndarray:
        """0/1 (float, NaN for a blank label) from the label column."""
        if self.label is None:
            raise ValueError("this preparation was fitted without a label column")
        return label_values(df[self.label.column], self.label).to_numpy()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON, so a served model can carry its preparation without pickling."""
        return {
            "numeric": list(self.numeric), "dates": list(self.dates),
            "flags": {k: list(v) for k, v in self.flags.items()},
            "categorical": {k: list(v) for k, v in self.categorical.items()},
            "sums": {k: list(v) for k, v in self.sums.items()},
            "label": None if self.label is None else {
                "column": self.label.column, "positive": self.label.positive,
                "negative": self.label.negative, "reason": self.label.reason},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preparation:
        return cls(
            tuple(d["numeric"]), tuple(d["dates"]),
            {k: (v[0], v[1]) for k, v in d["flags"].items()},
            {k: tuple(v) for k, v in d["categorical"].items()},
            {k: tuple(v) for k, v in d["sums"].items()},
            None if d.get("label") is None else LabelMapping(**d["label"]),
        )


def prepare(
    df: pd.DataFrame, inferences: list[ColumnInference], add_sums: bool = True
) -> tuple[pd.DataFrame, np.ndarray]:
    """Model-ready X (float numerics, pandas categoricals) and 0/1 y, for the labelled rows.

    Rows with a blank label are left out of both. For scoring new rows later, keep the fitted
    `Preparation` (``Preparation.fit``) instead: it remembers the training levels.
    """
    prep = Preparation.fit(df, inferences, add_sums=add_sums)
    y = prep.labels(df)
    keep = ~np.isnan(y)
    return prep.transform(df.loc[keep]), y[keep].astype(np.int64)


def sum_groups(numeric: list[str], taken: set[str] = frozenset()) -> dict[str, tuple[str, ...]]:
    """``{"sum_<word>": (columns...)}`` for numeric columns sharing a last name word.

    The last word is the last run of letters after splitting the lower-cased name on anything
    that is not a letter or digit; names ending in digits have none. A sum whose name is already
    a column (``taken``) is skipped.
    """
    groups: dict[str, list[str]] = {}
    for col in numeric:
        words = [w for w in re.split(r"[^a-z0-9]+", str(col).lower()) if w]
        if words and words[-1].isalpha():
            groups.setdefault(words[-1], []).append(col)
    return {
        f"{SUM_PREFIX}{word}": tuple(cols)
        for word, cols in groups.items()
        if len(cols) >= 2 and f"{SUM_PREFIX}{word}" not in taken
    }


def _flag_tokens(s: pd.Series) -> tuple[str, str]:
    """(token read as 1, token read as 0); "" as the 0 token means "blank is 0"."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return ("true", "false")
    distinct = set(blank_to_na(s).dropna().map(token))
    if len(distinct) == 1:
        return (distinct.pop(), "")
    return FLAG_PAIRS[frozenset(distinct)]


def _flag_values(s: pd.Series, one: str, zero: str) -> np.ndarray:
    tokens = blank_to_na(s).map(lambda v: "" if v is None or pd.isna(v) else token(v))
    mapping = {one: 1.0, zero: 0.0}
    return tokens.map(mapping).astype("float64").to_numpy()  # other values -> NaN
