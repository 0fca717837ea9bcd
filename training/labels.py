"""Labels: the rules moved to :mod:`features.labels` (data rules over the raw tables, which the
monitor in serving also needs); this module keeps training's names for them."""

from features.labels import (
    ARR_AT_AS_OF,
    ARR_AT_HORIZON,
    LABEL,
    PRODUCT,
    RENEWAL_DUE,
    TASKS,
    VALUE,
    churn_sql,
    cross_sell_sql,
    extraction_time,
    horizon_date,
    label_window_observed,
    make_labels,
    upsell_sql,
)

__all__ = [
    "ARR_AT_AS_OF", "ARR_AT_HORIZON", "LABEL", "PRODUCT", "RENEWAL_DUE", "TASKS", "VALUE",
    "churn_sql", "cross_sell_sql", "extraction_time", "horizon_date", "label_window_observed",
    "make_labels", "upsell_sql",
]
