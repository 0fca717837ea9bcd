"""Ranked opportunity lists for account managers: JSON pages or CSV."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from serving.deps import JSON, CurrentGeneration, ReadKey, single_query_values
from serving.ranking import KINDS, CursorError, ranked_items
from serving.responses import INVALID_QUERY, UNAUTHORIZED, UNAVAILABLE
from serving.results import to_csv
from serving.schemas import Kind, OpportunityPage, OwnersResponse
from serving.scorer import Scorer

router = APIRouter(prefix="/v1", tags=["opportunities"],
                   dependencies=[Depends(single_query_values)])
MAX_LIMIT = 10_000


@router.get(
    "/opportunities", response_model=OpportunityPage,
    summary="Accounts ranked by expected value",
    responses={200: {"content": {"text/csv": {}},
                     "description": "JSON page, or CSV with `Accept: text/csv`"},
               400: {"description": "A cursor this list did not issue"},
               **UNAUTHORIZED, **INVALID_QUERY, **UNAVAILABLE},
)
async def opportunities(
    request: Request, _key: ReadKey, generation: CurrentGeneration,
    kind: Annotated[Kind, Query(description="churn: by ARR at risk; upsell: by expected "
                                "expansion; cross_sell: by expected cross-sell ARR")] = "churn",
    owner: Annotated[str | None, Query(max_length=200, description="Account manager")] = None,
    segment: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=2000,
                                        description="`next_cursor` of the previous page")] = None,
    reasons: Annotated[bool, Query(description="Reasons of the list's model per item")] = True,
    format: Annotated[Literal["json", "csv"] | None, Query(
        description="csv: the same as `Accept: text/csv` (for download links)")] = None,
) -> Response:
    scorer = generation.scorer
    check_filters(scorer, owner, segment)
    try:
        items, next_cursor, total = await run_in_threadpool(
            ranked_items, scorer, kind, owner, segment, limit, cursor, reasons)
    except CursorError as exc:
        raise HTTPException(400, {"error": "bad_cursor", "message": f"cursor: {exc}"}) from exc
    if format == "csv" or (format is None and "text/csv" in request.headers.get("accept", "")):
        return Response(to_csv(items, KINDS[kind][0]), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="opportunities-{kind}-'
                                   f'{scorer.as_of}.csv"'})
    return JSON({"kind": kind, "as_of": scorer.as_of.isoformat(),
                 "model_versions": scorer.versions(), "total": total,
                 "next_cursor": next_cursor, "items": items})


@router.get("/owners", response_model=OwnersResponse,
            summary="Account managers of the served snapshot (values of the `owner` filter)",
            responses={**UNAUTHORIZED, **UNAVAILABLE})
async def owners(_key: ReadKey, generation: CurrentGeneration) -> JSON:
    scorer = generation.scorer
    return JSON({"as_of": scorer.as_of.isoformat(), "owners": scorer.owners(),
                 "segments": scorer.segments()})


def check_filters(scorer: Scorer, owner: str | None, segment: str | None) -> None:
    """A filter value no account has is a 422 naming the valid ones (a wrong case would
    otherwise answer an empty list that looks like "nothing to do")."""
    errors = []
    if segment is not None and segment not in scorer.segments():
        errors.append({"type": "unknown_segment", "loc": ("query", "segment"),
                       "input": segment[:40], "ctx": {"known": scorer.segments()},
                       "msg": f"no account has segment {segment[:40]!r}; segments: "
                              f"{', '.join(scorer.segments())}"})
    if owner is not None and owner not in scorer.owners():
        errors.append({"type": "unknown_owner", "loc": ("query", "owner"),
                       "input": owner[:40],
                       "msg": f"no account has owner {owner[:40]!r}; GET /v1/owners lists "
                              f"the {len(scorer.owners())} owners"})
    if errors:
        raise RequestValidationError(errors)

