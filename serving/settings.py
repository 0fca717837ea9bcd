"""Serving's settings: the API's keys, limits and models, over the shared sources.

Same ``PROPENSITY_*`` variables and TOML file as every package (``features.settings``); the
keys below are serving's own, the base brings the data directory, the catalogue's shape, the
gross margin, the MLflow store and the audit log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from features.settings import Settings
from serving.phrasing import money_formatter


class WebhookTarget(BaseModel):
    """One receiver of each run's changed accounts; its shared secret stays in the environment
    (``secret_env`` names the variable), never in the settings file."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Where the batches are POSTed (http:// or https://).")
    secret_env: str = Field(
        description="Environment variable holding the shared secret the bodies are signed "
        "with (HMAC-SHA256, see docs/webhooks.md).", min_length=1,
    )

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        import httpx

        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ValueError(f"{url!r} is not a URL ({exc})") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"{url!r}: give an http:// or https:// URL with a host")
        return url


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
    currency: str = Field(
        "USD", description="ISO 4217 code of the book's money (ARR, ARR at risk, expected "
        "expansion): the page shows every money figure with its symbol, e.g. EUR, GBP.",
    )
    currency_locale: str = Field(
        "en_US", description="How the page writes money: symbol place, digit grouping "
        "(en_US: $1,234,567; de_DE: 1.234.567 €).",
    )

    @field_validator("currency_locale")
    @classmethod
    def _known_locale(cls, value: str, info) -> str:
        money_formatter(info.data.get("currency") or "USD", value)  # raises on an unknown one
        return value

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        value = value.strip().upper()
        money_formatter(value, "en_US")
        return value

    # Delivery of each run into the CRM (serving.delivery)
    delivery_dir: Path | None = Field(
        None, description="Where each run's CRM files (files/as_of=.../) and the webhooks' dead "
        "letter (dead-letter.jsonl) go (default: <data_dir>/delivery).",
    )
    delivery_files: bool = Field(
        True, description="Write each run's bulk files for a CRM import: every account, and "
        "the changed ones, as CSV and Parquet.",
    )
    delivery_change_threshold: float = Field(
        0.05, description="An account is changed when its churn or upsell probability moved by "
        "at least this much since the previous run, its risk tier changed, or it is new.",
        ge=0, le=1,
    )
    webhooks: list[WebhookTarget] = Field(
        default_factory=list, description="Receivers of each run's changed accounts, e.g. "
        "[{url = 'https://crm.example.com/hooks/propensity', secret_env = 'CRM_HOOK_SECRET'}].",
    )
    webhook_batch_size: int = Field(
        500, description="Changed accounts per webhook POST.", ge=1
    )
    webhook_timeout_seconds: float = Field(
        10.0, description="Longest wait for one webhook answer.", gt=0
    )
    webhook_attempts: int = Field(
        4, description="Tries per batch and run (timeouts, connection errors, 408, 429 and 5xx "
        "answers are retried); a batch still failing goes to the dead letter.", ge=1,
    )
    webhook_backoff_seconds: float = Field(
        1.0, description="Wait before the first retry; doubled at each further retry.", ge=0
    )
    webhook_time_budget_seconds: float = Field(
        120.0, description="Most time one run spends on webhooks, retries included; what is "
        "left when it is spent goes to the dead letter for the next run.", gt=0,
    )

    @field_validator("webhooks")
    @classmethod
    def _one_entry_per_url(cls, targets: list[WebhookTarget]) -> list[WebhookTarget]:
        urls = [t.url for t in targets]
        for url in urls:
            if urls.count(url) > 1:
                raise ValueError(f"{url} is listed twice: give each receiver once")
        return targets

    @property
    def delivery_path(self) -> Path:
        return self.delivery_dir or self.data_dir / "delivery"
    admin_api_key: SecretStr | None = Field(
        None, description="An API key of scope admin, sent by `propensity run --reload-url` "
        "to POST /v1/admin/reload (prefer the PROPENSITY_ADMIN_API_KEY variable to a file).",
    )
    history_keep_days: int = Field(
        0, description="Score history partitions kept by `propensity run`: those within this "
        "many days of the newest run; 0 keeps everything.", ge=0,
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
