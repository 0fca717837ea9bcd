"""Training's settings: the label horizon and the promotion gate, over the shared sources
(the upsell label's growth is the base's: the monitor in serving computes labels too).

Same ``PROPENSITY_*`` variables and TOML file as every package (``features.settings``); the
keys below are training's own, the base brings the data directory, the catalogue's shape, the
seed and the MLflow store.
"""

from __future__ import annotations

from pydantic import Field

from features.settings import Settings


class TrainingSettings(Settings):
    """What ``propensity train`` and ``propensity models`` read."""

    horizon_days: int = Field(90, description="Label horizon for churn and upsell.", gt=0)
    promotion_max_ece_increase: float = Field(
        0.01, description="How much worse (ECE) a challenger may calibrate and still be promoted."
    )
    promotion_auc_margin: float = Field(
        0.01, ge=0, description="How much lower a challenger's ROC AUC may plausibly be than "
        "the champion's (the lower end of the paired difference's 95 % interval) and still be "
        "promoted.")
