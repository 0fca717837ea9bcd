"""Settings: one object holding where data lives and the choices that shape features.

Values come from, in order of precedence: keyword arguments, ``PROPENSITY_*`` environment
variables, an optional TOML file (``PROPENSITY_CONFIG`` or ``propensity.toml`` in the working
directory), then the defaults below. Created in entrypoints and passed down; never at import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from features.catalogue import DEFAULT_EVENT_TYPES, FeatureSpec


def _config_file() -> Path:
    return Path(os.environ.get("PROPENSITY_CONFIG", "propensity.toml"))


class Settings(BaseSettings):
    """Everything environment- or experiment-dependent that the pipeline reads."""

    model_config = SettingsConfigDict(env_prefix="PROPENSITY_", extra="forbid")

    data_dir: Path = Field(Path("data"), description="Root of the data directory.")
    seed: int = Field(42, description="Seed for generation and model fitting.")
    windows_days: tuple[int, ...] = Field(
        (7, 30, 90, 180), description="Look-back windows of windowed features, in days."
    )
    horizon_days: int = Field(90, description="Label horizon for churn and upsell.", gt=0)
    upsell_min_growth: float = Field(0.10, description="ARR growth share that counts as upsell.")
    gross_margin: float = Field(
        0.80, description="Gross margin used for customer lifetime value.", gt=0, le=1
    )
    event_types: tuple[str, ...] | None = Field(
        None, description="Usage event types counted one by one as features (events_<type>_"
        "<w>d); unset: the data's most frequent ones, at most max_event_types.", min_length=1,
    )
    max_event_types: int = Field(
        8, description="How many of the data's most frequent event types get their own "
        "features when event_types is unset.", ge=1,
    )
    build_workers: int | None = Field(
        None, description="Snapshots of a grid built at once (default: one per core).", ge=1
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        description="MLflow tracking server or store; default: MLFLOW_TRACKING_URI, else a "
        "SQLite store in <data_dir>/mlflow/.",
    )
    promotion_max_ece_increase: float = Field(
        0.01, description="How much worse (ECE) a challenger may calibrate and still be promoted."
    )
    duckdb_threads: int | None = Field(None, description="DuckDB threads (default: all cores).")
    duckdb_memory_limit: str | None = Field(None, description="DuckDB memory limit, e.g. '4GB'.")
    # Serving (propensity serve)
    auth_enabled: bool = Field(
        True, description="Require API keys; turn off only for local development."
    )
    api_keys_path: Path | None = Field(
        None, description="Hashed API keys file (default: <data_dir>/api_keys.json)."
    )
    audit_log_path: Path | None = Field(
        None, description="Append-only log of admin actions, JSON lines "
        "(default: <data_dir>/audit.log)."
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
    # Spark (--engine spark; needs the `spark` extra and Java 17)
    spark_master: str = Field("local[*]", description="Spark master URL (spark.master).")
    spark_conf: dict[str, str] = Field(
        default_factory=dict, description="Extra Spark configuration, e.g. spark.driver.memory."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml)

    def feature_spec(self, chosen_event_types: tuple[str, ...] | None = None) -> FeatureSpec:
        """The catalogue's shape; event types: the setting, else ``chosen_event_types`` (the
        data's, see ``features.event_types``), else the generator's defaults."""
        types = self.event_types or chosen_event_types or DEFAULT_EVENT_TYPES
        return FeatureSpec(windows_days=tuple(self.windows_days), event_types=tuple(types))

    # The data directory layout is an interface other tools rely on: keep it exactly so.
    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def features_dir(self) -> Path:
        return self.data_dir / "features"

    @property
    def kpis_dir(self) -> Path:
        return self.data_dir / "kpis"

    @property
    def mlflow_dir(self) -> Path:
        return self.data_dir / "mlflow"

    @property
    def default_tracking_uri(self) -> str:
        """The embedded MLflow store: SQLite in the data directory."""
        return f"sqlite:///{self.mlflow_dir.resolve() / 'mlflow.db'}"

    @property
    def keys_path(self) -> Path:
        return self.api_keys_path or self.data_dir / "api_keys.json"

    @property
    def audit_path(self) -> Path:
        return self.audit_log_path or self.data_dir / "audit.log"
