"""Serving's settings: the API's keys, limits and models, over the shared sources.

Same ``PROPENSITY_*`` variables and TOML file as every package (``features.settings``); the
keys below are serving's own, the base brings the data directory, the catalogue's shape, the
gross margin, the MLflow store and the audit log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

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
    admin_api_key: SecretStr | None = Field(
        None, description="An API key of scope admin, sent by `propensity run --reload-url` "
        "to POST /v1/admin/reload (prefer the PROPENSITY_ADMIN_API_KEY variable to a file).",
    )
    history_keep_days: int = Field(
        0, description="Score history partitions kept by `propensity run`: those within this "
        "many days of the newest run; 0 keeps everything.", ge=0,
    )

    @property
    def keys_path(self) -> Path:
        return self.api_keys_path or self.data_dir / "api_keys.json"
