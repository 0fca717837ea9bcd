"""Settings: the sources every package reads, and the settings of the features layer.

Values come from, in order of precedence: keyword arguments, ``PROPENSITY_*`` environment
variables, an optional TOML file (``PROPENSITY_CONFIG`` or ``propensity.toml`` in the working
directory), then the defaults below. Created in entrypoints and passed down; never at import.

Each package owns its settings: ``Settings`` here (the data directory and its layout, the
feature catalogue's shape, DuckDB, Spark, the MLflow store, the audit log), and two subclasses
over the same sources, ``training.settings.TrainingSettings`` and
``serving.settings.ServingSettings``. One TOML file holds the keys of all three: a class takes
its own keys from it and leaves the ones another package owns (``FILE_KEYS``), while a key that
no package owns (a typo) is still refused, naming the key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Self

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from features.catalogue import DEFAULT_EVENT_TYPES, FeatureSpec
from features.tracking_store import tracking_uri

#: Every key of the shared TOML file, whichever package reads it. Serving and training may not
#: import each other, so their keys are named here; tests/test_layers.py pins this set to the
#: union of the three classes' fields.
FILE_KEYS = frozenset({
    # features (this module)
    "data_dir", "seed", "windows_days", "event_types", "max_event_types", "gross_margin",
    "build_workers", "customer_score_as_feature",
    "duckdb_threads", "duckdb_memory_limit", "mlflow_tracking_uri", "audit_log_path",
    "spark_master", "spark_conf", "source", "source_mapping", "upsell_min_growth",
    # training (training/settings.py)
    "horizon_days", "promotion_max_ece_increase", "promotion_auc_margin",
    # serving (serving/settings.py)
    "auth_enabled", "api_keys_path", "max_batch_accounts", "max_body_bytes",
    "trust_forwarded_proto", "model_uris", "reload_max_account_drop", "reasons_per_direction",
    "unknown_categories", "max_missing_importance", "currency", "currency_locale",
    "delivery_dir", "delivery_files", "delivery_change_threshold", "webhooks",
    "webhook_batch_size", "webhook_timeout_seconds", "webhook_attempts",
    "webhook_backoff_seconds", "webhook_time_budget_seconds", "admin_api_key",
    "history_keep_days",
    "drift_psi_watch", "drift_psi_alert", "drift_confidence", "monitor_reference_rows",
    "monitor_bootstrap", "monitor_simulations", "retrain_enabled",
    "retrain_max_age_days", "retrain_drift_importance", "retrain_auc_margin",
    "recalibrate_ece_margin",
})


def config_file() -> Path:
    """The TOML file every package's settings read (it need not exist)."""
    return Path(os.environ.get("PROPENSITY_CONFIG", "propensity.toml"))


class SharedTomlSource(TomlConfigSettingsSource):
    """The shared TOML file, without the keys another package owns; unknown keys stay (and are
    refused by ``extra="forbid"``)."""

    def __init__(self, settings_cls: type[BaseSettings], toml_file: Path):
        self._own = set(settings_cls.model_fields)
        super().__init__(settings_cls, toml_file=toml_file)

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        data = super()._read_file(file_path)
        return {k: v for k, v in data.items() if k in self._own or k not in FILE_KEYS}


class Settings(BaseSettings):
    """The shared base, and what the features layer reads: where data live, the catalogue's
    shape, the engines, and the stores both training and serving use."""

    model_config = SettingsConfigDict(env_prefix="PROPENSITY_", extra="forbid")

    data_dir: Path = Field(Path("data"), description="Root of the data directory.")
    seed: int = Field(42, description="Seed for generation and model fitting.")
    windows_days: tuple[int, ...] = Field(
        (7, 30, 90, 180), description="Look-back windows of windowed features, in days."
    )
    event_types: tuple[str, ...] | None = Field(
        None, description="Usage event types counted one by one as features (events_<type>_"
        "<w>d); unset: the data's most frequent ones, at most max_event_types.", min_length=1,
    )
    max_event_types: int = Field(
        8, description="How many of the data's most frequent event types get their own "
        "features when event_types is unset.", ge=1,
    )
    upsell_min_growth: float = Field(
        0.10, description="ARR growth share that counts as upsell (the label rule: training's "
        "datasets and the monitor's realised labels).", ge=0)
    gross_margin: float = Field(
        0.80, description="Gross margin used for customer lifetime value.", gt=0, le=1
    )
    build_workers: int | None = Field(
        None, description="Snapshots of a grid built at once (default: one per core).", ge=1
    )
    customer_score_as_feature: bool = Field(
        False, description="Also make the customer's own health score (the optional "
        "health_scores table) a feature family, when the table has scores. Training always "
        "reports it as a baseline when present.",
    )
    duckdb_threads: int | None = Field(None, description="DuckDB threads (default: all cores).")
    duckdb_memory_limit: str | None = Field(None, description="DuckDB memory limit, e.g. '4GB'.")
    mlflow_tracking_uri: str | None = Field(
        None,
        description="MLflow tracking server or store; default: MLFLOW_TRACKING_URI, else a "
        "SQLite store in <data_dir>/mlflow/.",
    )
    audit_log_path: Path | None = Field(
        None, description="Append-only log of admin actions, JSON lines "
        "(default: <data_dir>/audit.log)."
    )
    source: str | None = Field(
        None, description="Where `propensity run` pulls the contract's tables from first (a "
        "folder, postgresql://..., adbc+<driver>:<uri>: see `data pull --source`); unset: the "
        "run uses <data_dir>/raw as it is.",
    )
    source_mapping: Path | None = Field(
        None, description="TOML mapping of the source's tables and columns to the contract's "
        "(see `data pull --mapping`); unset: the source uses the contract's names.",
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
        return (init_settings, env_settings, SharedTomlSource(settings_cls, config_file()))

    @classmethod
    def load(cls, data_dir: Path | None = None) -> Self:
        """From env / TOML, with a command line's --data-dir on top."""
        return cls(data_dir=data_dir) if data_dir else cls()

    def feature_spec(self, chosen_event_types: tuple[str, ...] | None = None,
                     customer_score: bool | None = None) -> FeatureSpec:
        """The catalogue's shape; event types: the setting, else ``chosen_event_types`` (the
        data's, see ``features.event_types``), else the generator's defaults. The customer
        score family: ``customer_score`` when given (the data's or the stored snapshot's
        answer), else the setting."""
        types = self.event_types or chosen_event_types or DEFAULT_EVENT_TYPES
        score = self.customer_score_as_feature if customer_score is None else customer_score
        return FeatureSpec(windows_days=tuple(self.windows_days), event_types=tuple(types),
                           customer_score=score)

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
    def tracking_uri(self) -> str:
        """The MLflow store training writes to and serving reads from (``tracking_uri``)."""
        return tracking_uri(self.mlflow_tracking_uri, self.mlflow_dir)

    @property
    def audit_path(self) -> Path:
        return self.audit_log_path or self.data_dir / "audit.log"
