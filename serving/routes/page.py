"""The account managers' page: ranked lists, filters, reasons, plays, KPIs, CSV download.

Server-rendered (Jinja2), no JavaScript build. With auth on, the page asks once for a read
key and keeps it in an HttpOnly cookie (SameSite=Strict; it only reads, see serving.auth). The
sign-in and sign-out forms are refused when posted from another origin.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

import numpy as np
from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from serving.auth import AuthError, credentials, foreign_origin, login_cookie, logout_cookie
from serving.ranking import CROSS_SELL_LIST, KINDS, CursorError, ranked_items
from serving.schemas import Kind
from serving.scorer import Scorer
from serving.valuation import PLAYS

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parents[1] / "templates"))
PAGE_SIZE = 25
KIND_LABELS = {"churn": "Accounts to save", "upsell": "Accounts to grow",
               CROSS_SELL_LIST: "Cross-sell"}
KIND_RANKING = {  # what an account manager reads under the tabs: how the list is ordered
    "churn": {"value": "ARR at risk", "formula": "ARR × churn probability",
              "total": "Total ARR at risk"},
    "upsell": {"value": "Expected expansion",
               "formula": "upsell probability × ARR × the segment's typical uplift",
               "total": "Total expected expansion"},
    CROSS_SELL_LIST: {"value": "Expected cross-sell ARR",
                      "formula": "probability of the next best product × its typical new ARR",
                      "total": "Total expected cross-sell ARR"},
}


def plain(value: object) -> str:
    """A feature value as a person reads it: 12.779722 -> "12.8", 0.2857 -> "0.29",
    21220.5 -> "21,220", True -> "yes"; the API keeps full precision, the page need not."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if value.is_integer() or abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.1f}" if abs(value) >= 1 else f"{value:.2f}"
    return str(value)


templates.env.filters["plain"] = plain


def _signed_in(request: Request) -> bool:
    auth = request.app.state.auth
    if not auth.enabled:
        return True
    try:
        auth.check(credentials(request)[0], "read")
        return True
    except AuthError:
        return False


def list_summary(scorer: Scorer, kind: str, owner: str | None, segment: str | None,
                 first_id: str | None) -> tuple[float, int]:
    """The money a filtered list stands for (its ranking value summed over every account),
    and how many of its accounts rank above ``first_id`` (so a page can say "26-50 of 75"
    although keyset pages do not know their offset)."""
    value = scorer.cols[KINDS[kind][1]].astype("float64")
    keep = ~np.isnan(value) & scorer.filter_mask(owner, segment)
    above = 0
    row = scorer.row_of.get(first_id) if first_id is not None else None
    if row is not None:
        v0, id0 = value[row], scorer.ids[row]
        above = int((keep & ((value > v0) | ((value == v0) & (scorer.ids < id0)))).sum())
    return float(value[keep].sum()), above


def month_label(month: str | None) -> str:
    """"2025-04" -> "April 2025" (the KPI strip's month)."""
    try:
        return date.fromisoformat(f"{month}-01").strftime("%B %Y")
    except (TypeError, ValueError):
        return month or ""


@router.get("/", response_class=HTMLResponse)
async def page(
    request: Request,
    kind: Annotated[Kind, Query()] = "churn",
    owner: Annotated[str | None, Query(max_length=200)] = None,
    segment: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> HTMLResponse:
    if not _signed_in(request):
        return templates.TemplateResponse(request, "login.html", {"error": None}, 401)
    generation = request.app.state.holder.current
    if generation is None:
        holder = request.app.state.holder
        return templates.TemplateResponse(request, "loading.html", {
            "error": holder.last_error, "missing": holder.last_missing}, 503)
    scorer = generation.scorer
    owner, segment = owner or None, segment or None
    try:
        items, next_cursor, total = await run_in_threadpool(
            ranked_items, scorer, kind, owner, segment, PAGE_SIZE, cursor, True)
    except CursorError:  # a stale or edited link: show the list from the top
        cursor = None
        items, next_cursor, total = await run_in_threadpool(
            ranked_items, scorer, kind, owner, segment, PAGE_SIZE, None, True)
    list_sum, offset = list_summary(scorer, kind, owner, segment,
                                    items[0]["account_id"] if items else None)
    filters = {k: v for k, v in {"kind": kind, "owner": owner, "segment": segment}.items() if v}
    return templates.TemplateResponse(request, "page.html", {
        "kind": kind, "kinds": KIND_LABELS, "ranking": KIND_RANKING[kind],
        "owner": owner, "segment": segment,
        "owners": scorer.owners(), "segments": scorer.segments(), "items": items,
        "total": total, "list_sum": list_sum, "offset": offset,
        "task": KINDS[kind][0], "as_of": scorer.as_of, "kpis": generation.kpis,
        "kpi_month": month_label(generation.kpis.get("month")),
        "versions": scorer.versions(), "plays": PLAYS,
        "first_url": "/?" + urlencode(filters) if cursor else None,
        "next_url": "/?" + urlencode({**filters, "cursor": next_cursor}) if next_cursor else None,
        "csv_url": "/v1/opportunities?" + urlencode({**filters, "limit": 10_000,
                                                     "format": "csv"}),
        "auth_on": request.app.state.auth.enabled,
    })


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, key: Annotated[str, Form(max_length=500)] = ""
                ) -> HTMLResponse:
    key = key.strip()
    elsewhere = foreign_origin(request)
    if elsewhere is not None:
        return templates.TemplateResponse(request, "login.html", {
            "error": f"Sign-in refused: the form was sent from {elsewhere}, not from this "
                     "site. Open this page's own address and sign in there."}, 403)
    if not key:
        return templates.TemplateResponse(
            request, "login.html", {"error": "Enter your read key."}, 401)
    try:
        request.app.state.auth.check(key, "read")
    except AuthError as exc:
        return templates.TemplateResponse(request, "login.html", {"error": exc.message},
                                          exc.status)
    response = RedirectResponse("/", status_code=303)
    login_cookie(response, key, request)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    if foreign_origin(request) is not None:
        return PlainTextResponse("Sign-out refused: the form was sent from another site.", 403)
    response = RedirectResponse("/", status_code=303)
    logout_cookie(response)
    return response
