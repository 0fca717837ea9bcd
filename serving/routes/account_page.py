"""The page's account view (scores over time, current reasons, what changed and why, the
suggested play) and its "biggest movers this week" list per owner.

Server-rendered like the list page (`serving.routes.page`: same templates, same sign-in);
the changes come from the generation's cached comparisons (`serving.routes.changes`).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from serving.changes import CHANGE_KINDS, ChangesError, ChangeSet
from serving.chart import probability_chart
from serving.history import ScoreHistory, history_dir
from serving.phrasing import money_formatter, with_texts
from serving.reasons import as_dicts
from serving.results import item
from serving.routes.changes import generation_change_set
from serving.routes.page import _signed_in, templates
from serving.state import Generation
from serving.valuation import PLAYS

router = APIRouter(include_in_schema=False)
MOVERS = 25  # rows of the movers list
KIND_TITLES = {"churn": "Churn risk", "upsell": "Upsell"}
SERIES_CLASSES = {"Churn": "line-churn", "Upsell": "line-upsell"}


def _gate(request: Request) -> HTMLResponse | Generation:
    """The generation to show, or the sign-in / loading page instead."""
    if not _signed_in(request):
        return templates.TemplateResponse(request, "login.html", {"error": None}, 401)
    holder = request.app.state.holder
    if holder.current is None:
        return templates.TemplateResponse(request, "loading.html", {
            "error": holder.last_error, "missing": holder.last_missing}, 503)
    return holder.current


@router.get("/accounts/{account_id}", response_class=HTMLResponse)
async def account_view(request: Request,
                       account_id: Annotated[str, PathParam(max_length=200)]) -> HTMLResponse:
    gate = _gate(request)
    if isinstance(gate, HTMLResponse):
        return gate
    context = await run_in_threadpool(account_context, request.app.state.settings, gate,
                                      account_id)
    context["auth_on"] = request.app.state.auth.enabled
    context["money_text"] = _money_text(request)
    return templates.TemplateResponse(request, "account.html", context,
                                      404 if context["not_found"] else 200)


def account_context(settings, generation: Generation, account_id: str) -> dict:
    scorer = generation.scorer
    row = scorer.row_of.get(account_id)
    past = ScoreHistory(history_dir(settings.data_dir)).account(account_id)
    context: dict = {"account_id": account_id, "as_of": scorer.as_of,
                     "not_found": row is None and past.empty, "current": None,
                     "reasons": {}, "chart": None, "runs": [], "changes": {}, "plays": PLAYS}
    if row is not None:
        context["current"] = item(scorer.cols, row)
        found = scorer.reasons([row], tuple(CHANGE_KINDS))[0]
        context["reasons"] = {task: with_texts(as_dicts(r), task)  # the list page's sentences
                              for task, r in found.items() if r is not None}
    if not past.empty:
        dates = [pd.Timestamp(d).date() for d in past["as_of"]]
        context["runs"] = [{"as_of": d, "churn": _number(c), "upsell": _number(u),
                            "versions": v} for d, c, u, v in zip(
            dates, past.get("churn_probability", [None] * len(dates)),
            past.get("upsell_probability", [None] * len(dates)), past["model_versions"],
            strict=True)]
        context["chart"] = probability_chart(dates, {
            "Churn": [r["churn"] for r in context["runs"]],
            "Upsell": [r["upsell"] for r in context["runs"]]}, SERIES_CLASSES)
        if context["current"] is None:  # not in the served snapshot: its last recorded run
            context["name"] = past["name"].iloc[-1] if "name" in past else None
    for kind in CHANGE_KINDS:
        context["changes"][kind] = account_change(settings, generation, kind, account_id)
    return context


def account_change(settings, generation: Generation, kind: str, account_id: str) -> dict:
    """What changed for one account (an item of `GET /v1/changes`), or why nothing shows."""
    try:
        cs = generation_change_set(settings, generation, kind)
    except ChangesError as exc:
        return {"message": exc.message}
    row = cs.row_of.get(account_id)
    if row is None:
        return {"message": f"not scored in both runs ({cs.runs.before} and {cs.runs.after})"}
    return {"item": cs.item(cs.table.iloc[row].to_dict(), row, None)}


@router.get("/movers", response_class=HTMLResponse)
async def movers(
    request: Request,
    kind: Annotated[str, Query(pattern="^(churn|upsell)$")] = "churn",
    owner: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    gate = _gate(request)
    if isinstance(gate, HTMLResponse):
        return gate
    context = await run_in_threadpool(movers_context, request.app.state.settings, gate, kind,
                                      owner or None)
    context["auth_on"] = request.app.state.auth.enabled
    context["money_text"] = _money_text(request)
    return templates.TemplateResponse(request, "movers.html", context)


def _money_text(request: Request):
    """Money in the book's currency, written like the list page writes it."""
    settings = request.app.state.settings
    return money_formatter(settings.currency, settings.currency_locale)


def movers_context(settings, generation: Generation, kind: str, owner: str | None) -> dict:
    """The largest ARR-weighted changes of ``kind`` (risers first, then fallers; unchanged
    accounts left out), for one owner or all."""
    context: dict = {"kind": kind, "kinds": KIND_TITLES, "owner": owner, "owners": [],
                     "items": [], "total": 0, "message": None, "runs": None,
                     "as_of": generation.scorer.as_of}
    try:
        cs: ChangeSet = generation_change_set(settings, generation, kind)
    except ChangesError as exc:
        context["message"] = exc.message
        return context
    context["owners"], context["runs"] = cs.owners(), cs.runs
    context["model_changed"] = cs.model_changed
    if owner is not None and owner not in context["owners"]:
        context["message"] = f"No account of the run of {cs.runs.after} has owner {owner}."
        return context
    moved = cs.mask(owner, None) & (cs.table["weighted_change"].fillna(0) != 0).to_numpy()
    rows = [int(r) for r in moved.nonzero()[0][:MOVERS]]
    context["items"] = cs.items(rows, list(range(1, len(rows) + 1)), n_drivers=3)
    context["total"] = int(moved.sum())
    context["csv_url"] = "/v1/changes?" + urlencode({
        "kind": kind, **({"owner": owner} if owner else {}), "limit": 10_000,
        "format": "csv"})
    return context


def _number(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)
