"""The public contract of the scoring API: request and response bodies, with examples.

Requests forbid unknown fields and non-finite numbers (a NaN from a CRM export must be an
error, not a silent missing value). Feature values are numbers, text (categorical features),
booleans or null (missing: LightGBM handles it); which of these a feature takes is the served
models' business, checked in `serving.inputs` (a wrong value is a 422 at its path).
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator, with_config
from typing_extensions import TypedDict  # `extra_items` (PEP 728) on Python 3.11

from serving.examples import score_request_examples
from serving.ranking import KINDS
from serving.registry import TASKS
from serving.row import ROW, Column

#: A model: "churn", "upsell", "cross-sell".
Task = Literal[TASKS]  # type: ignore[valid-type]
#: A ranked list: "churn", "upsell", "cross_sell" (`serving.ranking.KINDS`).
Kind = Literal[tuple(KINDS)]  # type: ignore[valid-type]
FeatureValue = Annotated[float, Field(allow_inf_nan=False)] | bool | str | list[str] | None


@with_config(ConfigDict())  # its own config: the request's extra="forbid" is not for records
class FeatureRecord(TypedDict, extra_items=FeatureValue):
    """One account's feature values by name, and two keys that are not features: typed here,
    so `held_products: 5` is a 422 at its path, not a crash in the scorer."""

    account_id: NotRequired[Annotated[str, Field(max_length=200)] | None]
    held_products: NotRequired[list[str] | None]


class ScoreRequest(BaseModel):
    """Accounts to score: by id (features from the newest snapshot) or by feature values."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=score_request_examples,  # from the catalogue: always accepted
    )

    account_ids: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        None, description="Accounts of the served snapshot. Unknown ids are per-item errors."
    )
    features: list[FeatureRecord] | None = Field(
        None,
        description="Feature values per account, named as in the feature catalogue (GET "
        "/v1/models lists each model's features). Absent or null features are missing values; "
        "a record missing too much of what the models rely on is refused (422). Numeric "
        "features take numbers (or text holding a decimal number), integer features whole "
        "numbers (true/false as 1/0), categorical features one of the values the model was "
        "trained on; anything else is a 422 naming `features[i].<name>` and the expected type. "
        "Optional keys: `account_id` (echoed back) and `held_products` (the names of products "
        "the account holds, never offered as next best product).",
    )
    columns: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        None, description="Column-wise input, with `data`: the names of the values in each "
        "row (features, and optionally `account_id`, `held_products`), like MLflow's "
        "`dataframe_split`. The compact form for big batches.",
    )
    data: list[list[FeatureValue]] | None = Field(
        None, description="Rows of values in the order of `columns`."
    )
    tasks: list[Task] = Field(
        default_factory=lambda: list(TASKS),
        description="Models to run on feature values; by id (scores are precomputed), the "
        "models whose reasons are added.",
        min_length=1,
    )
    reasons: bool = Field(
        True, description="Add the top reasons per model (TreeSHAP; costs ~0.5 ms per account "
        "and model, cached for accounts of the snapshot). Turn off for bulk scoring."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ScoreRequest:
        given = [self.account_ids is not None, self.features is not None,
                 self.columns is not None or self.data is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one of account_ids, features, or columns with data")
        if given[2]:
            self._check_columns()
        return self

    def _check_columns(self) -> None:
        if self.columns is None or self.data is None:
            raise ValueError("columns and data go together")
        repeated = sorted({c for c in self.columns if self.columns.count(c) > 1})
        if repeated:
            raise ValueError(f"columns: {', '.join(repeated)} given more than once")
        for i, row in enumerate(self.data):
            if len(row) != len(self.columns):
                raise ValueError(f"data[{i}] has {len(row)} values for {len(self.columns)} "
                                 "columns")

    def size(self) -> int:
        for rows in (self.account_ids, self.features, self.data):
            if rows is not None:
                return len(rows)
        return 0


class Reason(BaseModel):
    feature: str = Field(description="Feature name in the catalogue.")
    description: str = Field(description="What the feature means, in plain language.")
    value: float | int | str | bool | None = Field(description="The account's value.")
    contribution: float = Field(description="Signed contribution to the log-odds (TreeSHAP).")
    text: str | None = Field(None, description="The reason as a sentence that says why, as the "
                             "page and the CSV show it: the description with the value, or, for "
                             "features whose effect surprises people, the model's reading of it "
                             "(\"engaged: opened 29 support tickets in the last 90 days\" where "
                             "tickets lower churn risk, \"friction: ...\" where they raise it).")


class ReasonSet(BaseModel):
    raising: list[Reason] = Field(description="Strongest reasons the probability is higher.")
    lowering: list[Reason] = Field(description="Strongest reasons the probability is lower.")


def _row_field(column: Column) -> tuple[object, object]:
    """A `serving.row` column as an optional pydantic field."""
    kind = Literal[column.values] if column.values else (  # type: ignore[valid-type]
        str if column.kind == "text" else float)
    return kind | None, Field(None, description=column.description)


#: One account's scores, money at stake and next step; `error` set when it failed. The scored
#: columns come from `serving.row.ROW`, followed by what only the API adds.
AccountScore = create_model(
    "AccountScore",
    __doc__="One account's scores, money at stake and next step; `error` set when it failed.",
    account_id=(str | None, None),
    error=(str | None, Field(None, description="Why this item has no scores (e.g. unknown id).")),
    **{c.name: _row_field(c) for c in ROW if c.name != "account_id"},
    play_detail=(str | None, None),
    reasons=(dict[str, ReasonSet] | None, Field(
        None, description="Per model (churn, upsell, cross-sell): reasons both ways.")),
    rank=(int | None, Field(None, description="Position in the whole ranked list, all owners "
                            "and segments (lists only).")),
    list_rank=(int | None, Field(None, description="Position in the list as filtered by owner "
                                 "and segment (lists only; equals rank without filters).")),
    missing_features=(int | None, Field(
        None, description="Scored from explicit features only: how many of the scoring "
        "models' features had no value (absent, null, or an unknown category scored as "
        "missing).")),
    missing_importance=(float | None, Field(
        None, description="Scored from explicit features only: the share of a model's "
        "importance (split gain) carried by the missing features, the largest over the models "
        "run. Above the `max_missing_importance` setting the record is refused (422).")),
    missing_important=(list[str] | None, Field(
        None, description="Scored from explicit features only: the missing features the "
        "models rely on most (at most 5, most important first).")),
    warnings=(list[str] | None, Field(
        None, description="What was scored other than as given (an unknown category scored "
        "as missing, when the `unknown_categories` setting allows it).")),
)


class StoredReason(BaseModel):
    """A reason as the score history keeps it (the history keeps scores, not feature values)."""

    feature: str = Field(description="Feature name in the catalogue.")
    description: str = Field(description="What the feature means, in plain language.")
    contribution: float = Field(description="Signed contribution to the log-odds (TreeSHAP).")


class StoredReasonSet(BaseModel):
    raising: list[StoredReason]
    lowering: list[StoredReason]


#: One run's scores of one account, as the score history recorded them.
HistoryItem = create_model(
    "HistoryItem",
    __doc__="One run's scores of one account, as the score history recorded them.",
    as_of=(str, Field(description="The run's date (the snapshot's boundary).",
                      examples=["2025-05-01"])),
    **{c.name: _row_field(c) for c in ROW if c.name != "account_id"},
    model_versions=(dict[str, str | None], Field(
        description="Registered version of each task's model that scored this run.",
        examples=[{"churn": "3", "upsell": "2", "cross-sell": "2"}])),
    catalogue_version=(str | None, Field(
        None, description="Feature catalogue version of the snapshot scored.")),
    reasons=(dict[str, StoredReasonSet] | None, Field(
        None, description="Per model (churn, upsell, cross-sell): the top reasons both ways.")),
)


class AccountHistory(BaseModel):
    account_id: str
    items: list[HistoryItem] = Field(description="One item per run in the range, oldest "
                                     "first.")


class ScoreResponse(BaseModel):
    as_of: str | None = Field(description="Snapshot date of the features (by-id scoring).")
    model_versions: dict[str, str | None]
    horizon_days: int | None = None
    results: list[AccountScore]


class OpportunityPage(BaseModel):
    kind: Kind
    as_of: str
    model_versions: dict[str, str | None]
    total: int = Field(description="Accounts in this list after the filters.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at "
                                    "the end.")
    items: list[AccountScore]


class SnapshotProblem(BaseModel):
    """A rule the snapshot of a reload broke."""

    table: str = Field(examples=["feature snapshot as_of=2025-05-01"])
    column: str | None = Field(examples=["mrr"])
    rule: str = Field(description="missing_feature, wrong_type, catalogue_version, empty or "
                      "accounts_drop", examples=["wrong_type"])
    detail: str


class OwnersResponse(BaseModel):
    as_of: str
    owners: list[str] = Field(description="Every account manager of the served snapshot.")
    segments: list[str] = Field(description="Every segment of the served snapshot.")


class ModelInfo(BaseModel):
    task: str
    uri: str
    version: str | None
    run_id: str | None
    window: dict | None = Field(None, description="Training, validation and test dates.")
    test_metrics: dict[str, float] | None = None
    catalogue_version: str | None = None
    features: list[str]


class ModelsResponse(BaseModel):
    ready: bool
    as_of: str | None
    accounts: int
    reasons_ready: float = Field(description="Share of accounts whose reasons are computed "
                                 "(a background thread explains them all after loading).")
    loaded_at: str | None
    models: list[ModelInfo]
    missing: dict[str, str] = Field(description="Tasks without a model, and why.")
    last_reload_error: str | None = Field(
        None, description="Why the last reload failed (the service kept what it had)."
    )
    last_reload_problems: list[SnapshotProblem] = Field(
        default_factory=list, description="The snapshot rules the last refused reload broke."
    )


class ReloadResponse(BaseModel):
    reloaded: bool
    as_of: str | None
    model_versions: dict[str, str | None]
    error: str | None = None
    problems: list[SnapshotProblem] | None = Field(
        None, description="On 409: every rule the snapshot broke.")


class Health(BaseModel):
    status: str
    reason: str | None = Field(None, description="Why the service is not ready.")
    missing: dict[str, str] | None = Field(
        None, description="Tasks without a model, and the command that trains one.")


class DriftItem(BaseModel):
    """One feature's input drift against the training window, all accounts (more fields:
    level, KS test, null and out-of-range shares, the segments on alert)."""

    model_config = ConfigDict(extra="allow")
    feature: str
    psi: float | None = Field(description="Population stability index.")
    alert: bool


class PerformanceItem(BaseModel):
    """One score run of one task: realised metrics once its labels matured, estimated ones
    from the calibrated probabilities always (more fields: intervals, lift, segments)."""

    model_config = ConfigDict(extra="allow")
    as_of: str
    task: str
    product: str | None = Field(
        None, description="cross-sell only: the candidate product of a per-product row; "
                          "absent on the pooled row")
    matured: bool
    roc_auc: float | None
    estimated_roc_auc: float | None
    ece: float | None


class MonitoringResponse(BaseModel):
    """The newest `propensity monitor` result (saved under `<data_dir>/monitoring/`)."""

    model_config = ConfigDict(extra="allow")
    as_of: str
    drift: list[DriftItem]
    score_drift: dict
    performance: list[PerformanceItem]
