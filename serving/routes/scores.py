"""Scoring: a batch by ids or by feature values, and one account by id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from serving.deps import (
    JSON,
    CurrentGeneration,
    FastJSONRoute,
    ReadKey,
    single_query_values,
)
from serving.inputs import InputError
from serving.registry import TASKS
from serving.responses import (
    FORBIDDEN_COOKIE,
    INVALID,
    INVALID_QUERY,
    NOT_FOUND,
    TOO_LARGE,
    UNAUTHORIZED,
    UNAVAILABLE,
)
from serving.results import error_item, input_notes, item, items
from serving.schemas import AccountScore, ScoreRequest, ScoreResponse, Task
from serving.scorer import Scorer
from serving.scoring import SINGLE_ROW_LIMIT
from serving.settings import ServingSettings

router = APIRouter(prefix="/v1", tags=["scoring"], route_class=FastJSONRoute,
                   dependencies=[Depends(single_query_values)])
ALL_TASKS: tuple[Task, ...] = TASKS


@router.post(
    "/score", response_model=ScoreResponse, summary="Score accounts (by id or by features)",
    responses={**UNAUTHORIZED, **FORBIDDEN_COOKIE, **TOO_LARGE, **INVALID, **UNAVAILABLE},
)
async def score(body: ScoreRequest, _key: ReadKey, generation: CurrentGeneration,
                request: Request) -> JSON:
    """Up to `max_batch_accounts` accounts per call. By id, scores come from the served
    snapshot (an unknown id is an item with `error`); by feature values, the models run on
    the values given. Large batches run off the event loop; small ones inline (fastest)."""
    limit = request.app.state.settings.max_batch_accounts
    if body.size() > limit:
        raise HTTPException(413, {"error": "too_many_accounts",
                                  "message": f"{body.size()} accounts; at most {limit} per call"})
    scorer = generation.scorer
    tasks = tuple(dict.fromkeys(body.tasks))
    settings = request.app.state.settings
    if body.size() > SINGLE_ROW_LIMIT:
        results = await run_in_threadpool(_score, scorer, body, tasks, settings)
    else:
        results = _score(scorer, body, tasks, settings)
    request.app.state.metrics.scored.labels(
        "ids" if body.account_ids is not None else "features").inc(len(results))
    return JSON({"as_of": scorer.as_of.isoformat(), "model_versions": scorer.versions(),
                 "horizon_days": _horizon(scorer), "results": results})


def _score(scorer: Scorer, body: ScoreRequest, tasks: tuple[str, ...],
           settings: ServingSettings) -> list[dict]:
    if body.account_ids is not None:
        return by_ids(scorer, body.account_ids, body.reasons, tasks)
    unknown, limit = settings.unknown_categories, settings.max_missing_importance
    try:  # names, then values, then completeness: each a 422 in FastAPI's own shape
        if body.columns is not None:
            warnings = scorer.check_columns(body.columns, body.data or [], unknown)
            cols, reasons = scorer.score_columns(body.columns, body.data or [], tasks,
                                                 body.reasons, limit)
        else:
            warnings = scorer.check_records(body.features or [], unknown)
            cols, reasons = scorer.score_records(body.features or [], tasks, body.reasons,
                                                 limit)
    except InputError as exc:
        raise HTTPException(422, exc.errors()) from exc
    return input_notes(items(cols, list(range(len(cols["arr"]))), reasons or None), cols,
                       warnings)


def by_ids(scorer: Scorer, account_ids: list[str], with_reasons: bool,
           tasks: tuple[str, ...] = ALL_TASKS) -> list[dict]:
    rows = scorer.rows_for(account_ids)
    known = [r for r in rows if r is not None]
    reasons = dict(zip(known, scorer.reasons(known, tasks), strict=True)) if (
        with_reasons and known) else {}
    scored = iter(items(scorer.cols, known, [reasons.get(r) for r in known] if with_reasons
                        else None))
    return [
        error_item(a, "unknown account: not in the served snapshot") if r is None
        else next(scored)
        for a, r in zip(account_ids, rows, strict=True)
    ]


@router.get(
    "/accounts/{account_id}", response_model=AccountScore, summary="One account's scores",
    responses={**UNAUTHORIZED, **NOT_FOUND, **INVALID_QUERY, **UNAVAILABLE},
)
async def account(
    account_id: Annotated[str, Path(min_length=1, max_length=200, examples=["A0000001"])],
    _key: ReadKey, generation: CurrentGeneration,
    reasons: Annotated[bool, Query(description="Add the top reasons per model.")] = True,
) -> JSON:
    scorer = generation.scorer
    row = scorer.row_of.get(account_id)
    if row is None:
        raise HTTPException(404, {"error": "unknown_account",
                                  "message": f"account {account_id!r} is not in the snapshot "
                                             f"of {scorer.as_of}"})
    explained = scorer.reasons([row], ALL_TASKS)[0] if reasons else None
    return JSON(item(scorer.cols, row, explained))


def _horizon(scorer: Scorer) -> int | None:
    model = scorer.models.get("churn")
    value = model.meta.get("horizon_days") if model else None
    return int(value) if value is not None else None
