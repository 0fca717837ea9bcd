"""What changed since last week, and why: `GET /v1/changes` (JSON pages or CSV)."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field

from features.csv_safe import safe_row
from serving.changes import (
    CHANGE_KINDS,
    ChangeCursorError,
    ChangesError,
    ChangeSet,
    change_set,
)
from serving.deps import JSON, CurrentGeneration, ReadKey, single_query_values
from serving.history import ScoreHistory, history_dir
from serving.registry import LoadedModel, ModelLoadError, load_model
from serving.responses import INVALID_QUERY, UNAUTHORIZED, UNAVAILABLE, ErrorBody
from serving.settings import ServingSettings
from serving.state import Generation

router = APIRouter(prefix="/v1", tags=["changes"], dependencies=[Depends(single_query_values)])
MAX_LIMIT = 10_000
ChangeKind = Literal[CHANGE_KINDS]  # type: ignore[valid-type]
CSV_COLUMNS = ("rank", "account_id", "name", "owner", "segment", "arr", "previous_as_of",
               "as_of", "previous_probability", "probability", "change", "weighted_change",
               "previous_arr_at_risk", "arr_at_risk", "arr_at_risk_change", "model_changed",
               "drivers")

RANKING = ("Accounts present in both runs, ranked by `weighted_change` = (probability of the "
           "`kind` in the newer run - in the older run) x ARR in the newer run (a missing ARR "
           "counts as 0): risers first (largest first), then fallers (largest drop first), "
           "then unchanged accounts; ties by account_id.")


class Driver(BaseModel):
    feature: str = Field(description="Feature name in the catalogue.")
    description: str = Field(description="What the feature means, in plain language.")
    before: float | int | str | bool | None = Field(description="Value in the older snapshot.")
    after: float | int | str | bool | None = Field(description="Value in the newer snapshot.")
    contribution: float = Field(description="Its share of the change in the model's raw score "
                                "(log-odds): contribution after - contribution before.")
    text: str = Field(description='The line a person reads, e.g. "Product events in the last '
                      '30 days: 412 -> 96".')


class ChangeItem(BaseModel):
    account_id: str
    name: str | None = None
    owner: str | None = None
    segment: str | None = None
    arr: float | None = Field(None, description="ARR in the newer run.")
    as_of: str = Field(description="The newer run.")
    previous_as_of: str = Field(description="The older run.")
    kind: ChangeKind
    churn_probability: float | None = None
    previous_churn_probability: float | None = None
    upsell_probability: float | None = None
    previous_upsell_probability: float | None = None
    arr_at_risk: float | None = None
    previous_arr_at_risk: float | None = None
    arr_at_risk_change: float | None = None
    change: float | None = Field(None, description="Change in the `kind`'s probability, as the "
                                 "two runs stored it (each run's own model).")
    weighted_change: float | None = Field(None, description="`change` x ARR: the ranking key.")
    raw_change: float = Field(description="Change in the newer model's raw score (log-odds) "
                              "between the two snapshots: the sum of every feature's "
                              "contribution (`drivers` shows the largest).")
    play: str | None = None
    model_version: str | None = Field(None, description="Model version of the newer run: "
                                      "the one that explains the change.")
    previous_model_version: str | None = None
    model_changed: bool = Field(description="The runs were scored by different model "
                                "versions: part of `change` is the new model, not the account.")
    drivers: list[Driver] = Field(description="The features whose value changed that moved "
                                  "the raw score most, largest first (at most 5).")
    other_contribution: float = Field(description="The rest of `raw_change`: changed features "
                                      "beyond `drivers`, and unchanged features whose "
                                      "contribution shifted through their interaction with "
                                      "changed ones (TreeSHAP). `drivers` + this = "
                                      "`raw_change`.")
    rank: int | None = Field(None, description="Position in the filtered list.")


class ChangesPage(BaseModel):
    kind: ChangeKind
    as_of: str
    previous_as_of: str
    model_version: str | None
    previous_model_version: str | None
    model_changed: bool
    total: int = Field(description="Accounts in this list after the filters.")
    next_cursor: str | None
    items: list[ChangeItem]


NOT_FOUND = {404: {"model": ErrorBody, "description": "No history, only one run, or a run "
                   "without its feature snapshot.", "content": {"application/json": {
                       "examples": {
                           "no_history": {"summary": "No run recorded", "value": {"detail": {
                               "error": "no_history", "message": "the score history is empty: "
                               "run `propensity run` (twice, a week apart) to record scores"}}},
                           "one_run": {"summary": "Only one run", "value": {"detail": {
                               "error": "one_run", "message": "the score history has one run "
                               "(2025-05-01): a change needs two; run `propensity run` again "
                               "on a later date"}}},
                           "no_snapshot": {"summary": "A run's feature snapshot is gone", "value": {
                               "detail": {"error": "no_snapshot", "message": "no feature "
                               "snapshot of 2025-04-24 in data/features: the attribution needs "
                               "the snapshots of both runs"}}}}}}}}
INVALID_SINCE = {422: {**INVALID_QUERY[422], "description": INVALID_QUERY[422]["description"]
                       + " `since` must be the date of a recorded run before the newest; an "
                       "unknown owner or segment names the valid ones."}}


@router.get(
    "/changes", response_model=ChangesPage,
    summary="What changed since an earlier run, and why (ranked by ARR-weighted change)",
    description=RANKING + " Each item's `drivers` attribute the change in the newer model's "
    "raw score to features, with the before and after values; when the runs used different "
    "model versions, `model_changed` is true and the newer model explains both snapshots.",
    responses={200: {"content": {"text/csv": {}},
                     "description": "JSON page, or CSV with `Accept: text/csv`"},
               400: {"description": "A cursor this list did not issue"},
               **NOT_FOUND, **UNAUTHORIZED, **INVALID_SINCE, **UNAVAILABLE},
)
async def changes(
    request: Request, _key: ReadKey, generation: CurrentGeneration,
    kind: Annotated[ChangeKind, Query(description="churn or upsell probability")] = "churn",
    since: Annotated[date | None, Query(description="The older run (a recorded as_of); default "
                                        "the newest run at least 7 days before the newest "
                                        "(the oldest run when every run is closer)")
                     ] = None,
    owner: Annotated[str | None, Query(max_length=200, description="Account manager")] = None,
    segment: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=2000,
                                        description="`next_cursor` of the previous page")] = None,
    format: Annotated[Literal["json", "csv"] | None, Query(
        description="csv: the same as `Accept: text/csv` (for download links)")] = None,
) -> Response:
    settings: ServingSettings = request.app.state.settings
    found = await run_in_threadpool(changes_page, settings, generation, kind, since, owner,
                                    segment, limit, cursor)
    cs, items, next_cursor, total = found
    if format == "csv" or (format is None and "text/csv" in request.headers.get("accept", "")):
        return Response(to_csv(items), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="changes-{kind}-'
                                   f'{cs.runs.before}-{cs.runs.after}.csv"'})
    return JSON({"kind": kind, "as_of": str(cs.runs.after),
                 "previous_as_of": str(cs.runs.before), "model_version": cs.version,
                 "previous_model_version": cs.previous_version,
                 "model_changed": cs.model_changed, "total": total,
                 "next_cursor": next_cursor, "items": items})


def generation_change_set(settings: ServingSettings, generation: Generation, kind: str,
                          since: date | None = None) -> ChangeSet:
    """The generation's (cached) comparison of ``kind`` between the history's runs
    (`ChangesError` when there is none to make)."""
    scorer = generation.scorer

    def load(task: str, uri: str) -> LoadedModel:
        try:
            return load_model(task, uri, settings.tracking_uri)
        except ModelLoadError as exc:
            raise ChangesError(503, "model_unavailable", f"the model that scored the newer "
                               f"run cannot be loaded to explain it: {exc}") from exc

    return change_set(ScoreHistory(history_dir(settings.data_dir)), settings.features_dir,
                      kind, since, scorer.models, load, scorer.descriptions, generation.changes)


def served_change_set(settings: ServingSettings, generation: Generation, kind: str,
                      since: date | None) -> ChangeSet:
    """`generation_change_set` with HTTP errors for expected faults."""
    try:
        return generation_change_set(settings, generation, kind, since)
    except ChangesError as exc:
        if exc.status == 422:
            raise RequestValidationError([{"type": exc.code, "loc": ("query", "since"),
                                           "input": str(since), "msg": exc.message}]) from exc
        raise HTTPException(exc.status, {"error": exc.code, "message": exc.message}) from exc


def changes_page(settings: ServingSettings, generation: Generation, kind: str,
                 since: date | None, owner: str | None, segment: str | None, limit: int,
                 cursor: str | None) -> tuple[ChangeSet, list[dict], str | None, int]:
    cs = served_change_set(settings, generation, kind, since)
    check_filters(cs, owner, segment)
    try:
        rows, ranks, next_cursor, total = cs.page(owner, segment, limit, cursor)
    except ChangeCursorError as exc:
        raise HTTPException(400, {"error": "bad_cursor", "message": f"cursor: {exc}"}) from exc
    return cs, cs.items(rows, ranks), next_cursor, total


def check_filters(cs: ChangeSet, owner: str | None, segment: str | None) -> None:
    """A filter value no account of the newer run has is a 422 naming the valid ones."""
    errors = []
    if owner is not None and owner not in cs.owners():
        errors.append({"type": "unknown_owner", "loc": ("query", "owner"), "input": owner[:40],
                       "msg": f"no account of the run of {cs.runs.after} has owner "
                              f"{owner[:40]!r}; GET /v1/owners lists the owners"})
    if segment is not None and segment not in cs.segments():
        errors.append({"type": "unknown_segment", "loc": ("query", "segment"),
                       "input": segment[:40], "msg": f"no account has segment "
                       f"{segment[:40]!r}; segments: {', '.join(cs.segments())}"})
    if errors:
        raise RequestValidationError(errors)


def to_csv(items: list[dict]) -> str:
    """Change items as CSV: drivers as their plain-language lines, formula-safe cells."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for one in items:
        probability = f"{one['kind']}_probability"
        writer.writerow(safe_row({
            **one, "probability": one[probability],
            "previous_probability": one[f"previous_{probability}"],
            "drivers": "; ".join(f"{d['text']} ({d['contribution']:+.2f})"
                                 for d in one["drivers"])}))
    return buffer.getvalue()
