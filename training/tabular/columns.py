"""Column type inference for a "bring your own table": what each column of a messy table is.

Real per-account exports mix numbers, numbers typed as text ("1,234", blanks), yes/no flags in
every spelling, codes, free text and row numbers. Each column gets exactly one kind, decided by
these rules in order (first match wins), and a one-line ``detail`` a person can check:

1. the ``label`` / ``id`` / ``time`` columns named by the caller;
2. ``constant``: every value blank, or one value and no blanks (dropped: it cannot split rows);
3. ``flag``: booleans, one value plus blanks ("Y" or empty), or exactly two values that form a
   known pair (yes/no, y/n, true/false, t/f, 1/0, on/off; case and spaces ignored);
4. numeric dtypes are ``numeric``, whatever their cardinality: an integer code (area code 408,
   415, 510) splits by range in trees and is a trend for the linear model, both harmless, and
   counts such as service calls (0..9) are better as numbers than as levels. An integer column
   with a distinct value per row is an ``id`` when its name says so (``id``, ``*_id``,
   ``customerId``) or when it is a row counter (consecutive and increasing in file order);
5. text that parses as numbers (spaces, blanks, ``1,234`` thousands separators, a leading
   currency sign, a trailing ``%``) is ``numeric``; dates (datetime dtype or ISO text) are
   ``numeric`` as days since 1970-01-01;
6. other text is an ``id`` (dropped) when at least 90 % of its non-blank values are distinct,
   since a level seen once teaches nothing, and ``categorical`` otherwise.

Blank means missing: NaN, and text that is empty or whitespace or one of ``na``, ``n/a``,
``nan``, ``null``, ``?`` (any case).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

Kind = Literal["numeric", "categorical", "flag", "id", "time", "label", "constant"]
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "?"})
FLAG_PAIRS: dict[frozenset[str], tuple[str, str]] = {
    frozenset(pair): pair
    for pair in (("yes", "no"), ("y", "n"), ("true", "false"), ("t", "f"), ("1", "0"),
                 ("on", "off"))
}
ID_SHARE = 0.9  # text with at least this share of distinct values is an identifier

# Words that mark the positive class of a two-valued label; a negation marks the negative one.
POSITIVE_WORDS = frozenset({
    "yes", "y", "true", "t", "1", "churn", "churned", "churner", "churns", "left", "leaver",
    "cancel", "cancelled", "canceled", "cancellation", "exit", "exited", "attrited", "attrition",
    "lapsed", "terminated", "inactive", "positive", "pos", "converted", "bought", "purchased",
    "responded", "upsell", "upsold", "expanded", "default", "defaulted", "fraud", "bad",
})
NEGATIVE_WORDS = frozenset({
    "no", "n", "false", "f", "0", "not", "non", "never", "active", "stayed", "retained",
    "existing", "current", "renewed", "negative", "neg", "good",
})

_ID_NAME = re.compile(r"(^|[^A-Za-z0-9])(id|ID|Id)$|[a-z0-9](ID|Id)$|^(id|ID|Id)$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_ISO_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"
)


@dataclass(frozen=True)
class ColumnInference:
    """What one column is, and why, in words a person can check."""

    name: str
    kind: Kind
    detail: str


@dataclass(frozen=True)
class LabelMapping:
    """Which label value is 1. ``positive`` / ``negative`` are normalised tokens (`token`)."""

    column: str
    positive: str
    negative: str
    reason: str


# ---------------------------------------------------------------- value helpers


def token(value: object) -> str:
    """A value's normalised text: lower case, no surrounding spaces, whole floats as integers
    (1.0 -> "1"), booleans as "true" / "false". Flags and labels compare these."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | float | np.integer | np.floating):
        f = float(value)
        return str(int(f)) if f.is_integer() else repr(f)
    return str(value).strip().lower()


def blank_to_na(s: pd.Series) -> pd.Series:
    """The column with blank text (see the module docstring) replaced by missing values;
    other text is stripped of surrounding spaces. Non-text columns come back unchanged."""
    if not _is_text(s):
        return s
    text = s.astype(object).where(s.notna(), None)
    stripped = text.map(lambda v: v.strip() if isinstance(v, str) else v)
    is_blank = stripped.map(lambda v: v is None or (isinstance(v, str)
                                                    and v.lower() in MISSING_TOKENS))
    is_blank = is_blank | stripped.isna()
    return stripped.where(~is_blank, None)


def parse_numbers(s: pd.Series) -> tuple[pd.Series, bool]:
    """Text to float64 (unparseable -> NaN) and whether any value used a thousands separator.

    Accepts surrounding spaces, ``1,234.5`` separators, a leading ``$ € £`` and a trailing
    ``%`` (kept as the number: "12%" -> 12.0). European "1.234,5" is not a number here.
    """
    if not _is_text(s):
        return pd.to_numeric(s, errors="coerce").astype("float64"), False
    text = blank_to_na(s)
    cleaned = text.map(lambda v: _strip_number(v) if isinstance(v, str) else None)
    separators = bool(cleaned.map(lambda v: v is not None and bool(_THOUSANDS.match(v))).any())
    numbers = cleaned.map(lambda v: v.replace(",", "") if v is not None and _THOUSANDS.match(v)
                          else v)
    valid = numbers.map(lambda v: v is not None and bool(_NUMBER.match(v)))
    out = pd.to_numeric(numbers.where(valid, None), errors="coerce").astype("float64")
    return out, separators


def parse_dates(s: pd.Series) -> pd.Series:
    """Dates (datetime dtype or ISO text) as UTC timestamps; anything else -> NaT."""
    if _is_text(s):
        s = blank_to_na(s)
        s = s.where(s.map(lambda v: isinstance(v, str) and bool(_ISO_DATE.match(v))), None)
        return pd.to_datetime(s, utc=True, errors="coerce", format="ISO8601")
    return pd.to_datetime(s, utc=True, errors="coerce")


def dates_to_days(s: pd.Series) -> pd.Series:
    """Days since 1970-01-01 (float, fractions for times of day); NaN for missing."""
    stamps = parse_dates(s)
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    return ((stamps - epoch) / pd.Timedelta(days=1)).astype("float64")


def is_date_column(s: pd.Series) -> bool:
    """Datetime dtype, or text whose every non-blank value is an ISO date."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return True
    if not _is_text(s):
        return False
    values = blank_to_na(s).dropna()
    return len(values) > 0 and bool(values.map(lambda v: bool(_ISO_DATE.match(str(v)))).all())


def _strip_number(v: str) -> str:
    v = v.strip()
    if v[:1] in "$€£":
        v = v[1:].strip()
    elif v[:1] in "+-" and v[1:2] in ("$", "€", "£"):
        v = v[0] + v[2:].strip()
    if v.endswith("%"):
        v = v[:-1].strip()
    return v


def _is_text(s: pd.Series) -> bool:
    return s.dtype == object or pd.api.types.is_string_dtype(s.dtype) or isinstance(
        s.dtype, pd.CategoricalDtype)


def _blanks(n: int) -> str:
    return f"{n} blank" if n == 1 else f"{n} blanks"


def _with_blanks(text: str, n_blank: int, extra: tuple[str, ...] = ()) -> str:
    notes = [*extra, _blanks(n_blank)] if n_blank else list(extra)
    return f"{text} ({', '.join(notes)})" if notes else text


def _quote_list(values: list[str], limit: int = 10) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f", ... ({len(values) - limit} more)" if len(values) > limit else "")


# ---------------------------------------------------------------- the label


def check_table(df: pd.DataFrame, label: str, id_col: str | None, time_col: str | None) -> None:
    """Clear errors for an unusable table or column names, before any inference."""
    if df.shape[1] == 0:
        raise ValueError("the table is empty: it has no columns")
    if df.shape[0] == 0:
        raise ValueError(f"the table is empty: it has columns ({_quote_list(list(df.columns))}) "
                         "but no rows")
    if df.columns.duplicated().any():
        dupes = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
        raise ValueError(f"the table has duplicate column names: {_quote_list(dupes)}")
    for role, name in (("label", label), ("id", id_col), ("time", time_col)):
        if name is not None and name not in df.columns:
            raise ValueError(f"{role} column {name!r} is not in the table; its columns are: "
                             f"{_quote_list([str(c) for c in df.columns], 30)}")
    named = [n for n in (label, id_col, time_col) if n is not None]
    if len(set(named)) != len(named):
        raise ValueError(f"the label, id and time columns must be different, got {named}")


def infer_label(s: pd.Series) -> LabelMapping:
    """Which of the label's two values is the positive class (1), or a ValueError.

    Rule: for two numbers, 1 against 0, otherwise the larger; for text, a value holding a
    positive word (yes, true, churned, cancelled, attrited, ...) against one that does not;
    else the value that is not negative (no, false, active, "not churned", ...); else the rarer
    value (the event a propensity model looks for is usually the rare one), the later in sorted
    order on a tie.
    """
    name = str(s.name)
    values = blank_to_na(s).dropna()
    if values.empty:
        raise ValueError(f"label column {name!r} has no values: all {len(s)} rows are blank")
    tokens = values.map(token)
    counts = tokens.value_counts()
    distinct = sorted(counts.index)
    if len(distinct) == 1:
        raise ValueError(f"label column {name!r} has a single class: every labelled row is "
                         f"{distinct[0]!r}; a model needs both classes")
    if len(distinct) > 2:
        raise ValueError(f"label column {name!r} has {len(distinct)} distinct values "
                         f"({_quote_list(distinct)}); a label needs exactly two, such as "
                         "yes/no or 1/0")
    a, b = distinct
    pos = [v for v in (a, b) if _label_side(v) == "positive"]
    neg = [v for v in (a, b) if _label_side(v) == "negative"]
    numbers = all(_NUMBER.match(v) for v in (a, b))
    if numbers and {a, b} != {"0", "1"}:
        positive, reason = max((a, b), key=float), "the larger value"
    elif len(pos) == 1:
        positive, reason = pos[0], f"{pos[0]!r} reads as the positive class"
    elif len(neg) == 1:
        positive = b if neg[0] == a else a
        reason = f"{neg[0]!r} reads as the negative class"
    else:
        positive = a if counts[a] < counts[b] else b
        reason = "no yes/no reading; the rarer value"
    negative = b if positive == a else a
    return LabelMapping(name, positive, negative, reason)


def label_values(s: pd.Series, mapping: LabelMapping) -> pd.Series:
    """0/1 per row (float, NaN where the label is blank or not one of the two values)."""
    tokens = blank_to_na(s).map(lambda v: None if v is None or pd.isna(v) else token(v))
    return tokens.map({mapping.positive: 1.0, mapping.negative: 0.0}).astype("float64")


def _label_side(value: str) -> str | None:
    words = set(re.split(r"[^a-z0-9]+", value)) - {""}
    if words & NEGATIVE_WORDS:
        return "negative"
    if words & POSITIVE_WORDS:
        return "positive"
    return None


def _label_detail(s: pd.Series, mapping: LabelMapping) -> str:
    y = label_values(s, mapping)
    n_pos, n = int((y == 1).sum()), int(y.notna().sum())
    text = (f"{mapping.positive!r} -> 1, {mapping.negative!r} -> 0 ({mapping.reason}); "
            f"{n_pos} of {n} rows positive ({n_pos / n:.1%})")
    n_blank = len(s) - n
    return text + (f"; {n_blank} rows with a blank label are not used" if n_blank else "")


# ---------------------------------------------------------------- features


def infer_columns(
    df: pd.DataFrame, label: str, id_col: str | None = None, time_col: str | None = None
) -> list[ColumnInference]:
    """One `ColumnInference` per column of ``df``, in column order (rules: module docstring).

    Raises ValueError for an empty table, a label / id / time column that is missing, a label
    without exactly two classes, or a time column that holds neither dates nor numbers.
    """
    check_table(df, label, id_col, time_col)
    out = []
    for name in df.columns:
        s = df[name]
        if name == label:
            out.append(ColumnInference(name, "label", _label_detail(s, infer_label(s))))
        elif name == id_col:
            out.append(ColumnInference(name, "id", _id_detail(s)))
        elif name == time_col:
            out.append(ColumnInference(name, "time", _time_detail(s)))
        else:
            out.append(_infer_feature(name, s))
    return out


def _infer_feature(name: str, s: pd.Series) -> ColumnInference:
    clean = blank_to_na(s)
    values = clean.dropna()
    n_blank = len(s) - len(values)
    if values.empty:
        return ColumnInference(name, "constant", f"every value is blank ({len(s)} rows)")
    if pd.api.types.is_bool_dtype(s.dtype):
        return ColumnInference(name, "flag", _with_blanks("true/false flag", n_blank))
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return _date_column(name, values, n_blank, "date")
    distinct = sorted(set(values.map(token)))
    if len(distinct) == 1:
        shown = str(values.iloc[0]).strip()
        if n_blank == 0:
            return ColumnInference(name, "constant", f"a single value {shown!r}")
        return ColumnInference(name, "flag", f"{shown!r} or blank flag "
                                             f"({_blanks(n_blank)} read as 0)")
    pair = FLAG_PAIRS.get(frozenset(distinct))
    if pair is not None:
        return ColumnInference(name, "flag", _with_blanks(f"{pair[0]}/{pair[1]} flag", n_blank))
    if pd.api.types.is_numeric_dtype(s.dtype):
        return _numeric_column(name, s, values, n_blank)
    numbers, separators = parse_numbers(s)
    if numbers.notna().sum() == len(values):
        extra = ("thousands separators",) if separators else ()
        return ColumnInference(name, "numeric",
                               _with_blanks("number stored as text", n_blank, extra))
    if is_date_column(s):
        return _date_column(name, values, n_blank, "date stored as text")
    n_levels = len(set(values))
    if n_levels >= ID_SHARE * len(values) and len(values) >= 2:
        return ColumnInference(name, "id", f"text with {n_levels} distinct values in "
                                           f"{len(values)} rows, read as an identifier (dropped)")
    return ColumnInference(name, "categorical", _with_blanks(f"text, {n_levels} levels", n_blank))


def _numeric_column(name: str, s: pd.Series, values: pd.Series, n_blank: int) -> ColumnInference:
    whole = bool(np.all(np.mod(values.to_numpy(dtype="float64"), 1) == 0))
    if whole and n_blank == 0 and values.is_unique:
        if _ID_NAME.search(str(name)):
            return ColumnInference(name, "id", "a distinct whole number per row and named like "
                                               "an identifier (dropped)")
        v = values.to_numpy(dtype="float64")
        if len(v) > 2 and v.max() - v.min() == len(v) - 1 and bool(np.all(np.diff(v) > 0)):
            return ColumnInference(name, "id", "consecutive whole numbers in row order, a row "
                                               "number (dropped)")
    kind = "whole number" if whole else "number"
    return ColumnInference(name, "numeric", _with_blanks(kind, n_blank))


def _date_column(name: str, values: pd.Series, n_blank: int, what: str) -> ColumnInference:
    if values.nunique() == 1:
        return ColumnInference(name, "constant", f"a single {what} {str(values.iloc[0])!r}")
    return ColumnInference(name, "numeric",
                           _with_blanks(f"{what}, as days since 1970-01-01", n_blank))


def _id_detail(s: pd.Series) -> str:
    repeated = int(s.duplicated(keep="first").sum())
    base = "the id column (not a feature)"
    if repeated:
        return base + (f"; {repeated} rows repeat an earlier id, so cross-validation keeps "
                       "each id's rows in one fold")
    return base


def time_values(s: pd.Series) -> pd.Series:
    """The time column as sortable values: UTC timestamps for dates, floats for numbers.

    Raises ValueError when it holds neither, or when some rows are blank or unreadable.
    """
    name = str(s.name)
    if is_date_column(s):
        parsed = parse_dates(s)
    elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        parsed = s.astype("float64")
    else:
        numbers, _ = parse_numbers(s)
        if numbers.notna().sum() != blank_to_na(s).notna().sum():
            raise ValueError(f"time column {name!r} holds neither dates (YYYY-MM-DD...) nor "
                             f"numbers, e.g. {str(blank_to_na(s).dropna().iloc[0])!r}")
        parsed = numbers
    bad = int(parsed.isna().sum())
    if bad:
        raise ValueError(f"time column {name!r} has {bad} blank or unreadable values; every row "
                         "needs a time for a time-based split")
    return parsed


def _time_detail(s: pd.Series) -> str:
    t = time_values(s)
    fmt = (lambda v: v.date().isoformat()) if isinstance(t.dtype, pd.DatetimeTZDtype) else (
        lambda v: f"{v:g}")
    what = "dates" if isinstance(t.dtype, pd.DatetimeTZDtype) else "numbers"
    return (f"{what} from {fmt(t.min())} to {fmt(t.max())}, {t.nunique()} distinct "
            "(time-based split, not a feature)")
