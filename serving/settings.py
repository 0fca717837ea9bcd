"""Serving's settings: the API's keys, limits and models, over the shared sources.

Same ``PROPENSITY_*`` variables and TOML file as every package (``features.settings``); the
keys below are serving's own, the base brings the data directory, the catalogue's shape, the
gross margin, the MLflow store and the audit log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from features.settings import Settings


class ServingSettings(Settings):
    """What ``propensity serve``, ``propensity score`` and ``propensity keys`` read."""

    auth_enabled: bool = Field(
        True, description="Require API keys; turn off only for local development."
    )
    api_keys_path: Path | None = Field(
        None, description="Hashed API keys file (default: <data_dir>/api_keys.json)."
    )
    max_batch_accounts: int = Field(
        10_000, description="Most accounts one POST /v1/score may carry.", ge=1
    )
    max_body_bytes: int | None = Field(
        None, description="Largest request body in bytes; larger ones get 413 unread (default: "
        "max_batch_accounts x 4 KiB + 64 KiB, the largest legal column-wise batch).", ge=1,
    )
    trust_forwarded_proto: bool = Field(
        False, description="Behind a TLS-terminating proxy: take the scheme from its "
        "X-Forwarded-Proto header (Secure cookie, same-origin check of the sign-in form). "
        "Only when every request comes through that proxy.",
    )
    model_uris: dict[str, str] = Field(
        default_factory=dict,
        description="Explicit model URI per task (churn, upsell, cross-sell) instead of the "
        "registry's champion, e.g. {churn = 'models:/propensity-churn/3'}.",
    )
    reload_max_account_drop: float = Field(
        0.5, description="Largest share of the serving accounts a new snapshot may lose at "
        "reload; a bigger drop is refused unless the admin reloads with force=true.", ge=0, le=1
    )
    reasons_per_direction: int = Field(
        3, description="Reasons shown per direction (raising and lowering a probability).", ge=1
    )
    unknown_categories: Literal["error", "missing"] = Field(
        "error",
        description="A categorical value the model never saw in POST /v1/score (e.g. segment "
        "'Enterprise' where the data say 'enterprise'): 'error' refuses it with a 422 listing "
        "the known values; 'missing' scores it as missing and says so in the item's warnings.",
    )
    max_missing_importance: float = Field(
        0.5,
        description="POST /v1/score by features refuses (422) a record whose missing features "
        "carry more than this share of a model's importance (split gain); 1 turns it off.",
        ge=0,
        le=1,
    )

    # --- monitoring (propensity monitor) and its retraining triggers ---
    drift_psi_watch: float = Field(
        0.1, description="PSI from which a feature's (or a score's) drift is worth watching.", ge=0)
    drift_psi_alert: float = Field(
        0.25, description="PSI from which a drift is an alert.", ge=0)
    drift_confidence: float = Field(
        0.999, description="A PSI counts only above what chance alone exceeds with probability "
        "1 - this at the sample's size (a small segment needs a larger shift).", gt=0, lt=1)
    monitor_reference_rows: int = Field(
        200_000, description="Most training-window rows (a seeded sample) the monitor compares "
        "against.", ge=100)
    monitor_bootstrap: int = Field(
        200, description="Bootstrap resamples of accounts behind each realised metric's "
        "interval.", ge=20)
    monitor_simulations: int = Field(
        100, description="Outcomes drawn from the probabilities to state the error of an "
        "estimated (label-free) AUC.", ge=20)
    retrain_enabled: bool = Field(
        True, description="Let `propensity run` retrain when a trigger fires.")
    retrain_max_age_days: int = Field(
        30, description="Trigger: the champion is older than this many days.", ge=1)
    retrain_drift_importance: float = Field(
        0.2, description="Trigger: features on drift alert carry at least this share of the "
        "model's importance.", gt=0, le=1)
    retrain_auc_margin: float = Field(
        0.05, description="Trigger: realised or estimated ROC AUC below the model's test AUC by "
        "more than this.", gt=0, le=1)
    recalibrate_ece_margin: float = Field(
        0.03, description="Recalibration only: realised ECE above the model's test ECE by more "
        "than this while the AUC holds.", gt=0, le=1)

    @property
    def monitoring_dir(self) -> Path:
        return self.data_dir / "monitoring"

    @property
    def keys_path(self) -> Path:
        return self.api_keys_path or self.data_dir / "api_keys.json"
