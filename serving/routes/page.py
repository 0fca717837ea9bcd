"""The account managers' page: ranked lists, filters, reasons, plays, KPIs, CSV download.

Server-rendered (Jinja2), no JavaScript build. With auth on, the page asks once for a read
key and keeps it in an HttpOnly cookie (SameSite=Strict, so forms cannot be posted cross-site).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from serving.auth import AuthError, credentials, login_cookie, logout_cookie
from serving.routes.opportunities import ranked_items
from serving.schemas import Kind
from serving.scorer import KINDS, CursorError
from serving.valuation import PLAYS

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parents[1] / "templates"))
PAGE_SIZE = 25
KIND_LABELS = {"churn": "Accounts to save", "upsell": "Accounts to grow",
               "cross_sell": "Cross-sell"}


def _signed_in(request: Request) -> bool:
    auth = request.app.state.auth
    if not auth.enabled:
        return True
    try:
        auth.check(credentials(request, None, None), "read")
        return True
    except AuthError:
        return False


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
        return templates.TemplateResponse(request, "loading.html", {}, 503)
    scorer = generation.scorer
    owner, segment = owner or None, segment or None
    try:
        items, next_cursor, total = await run_in_threadpool(
            ranked_items, scorer, kind, owner, segment, PAGE_SIZE, cursor, True)
    except CursorError:
        items, next_cursor, total = await run_in_threadpool(
            ranked_items, scorer, kind, owner, segment, PAGE_SIZE, None, True)
    filters = {k: v for k, v in {"kind": kind, "owner": owner, "segment": segment}.items() if v}
    return templates.TemplateResponse(request, "page.html", {
        "kind": kind, "kinds": KIND_LABELS, "owner": owner, "segment": segment,
        "owners": scorer.owners(), "segments": scorer.segments(), "items": items,
        "total": total, "task": KINDS[kind][0], "as_of": scorer.as_of, "kpis": generation.kpis,
        "versions": scorer.versions(), "plays": PLAYS,
        "next_url": "/?" + urlencode({**filters, "cursor": next_cursor}) if next_cursor else None,
        "csv_url": "/v1/opportunities?" + urlencode({**filters, "limit": 10_000,
                                                     "format": "csv"}),
        "auth_on": request.app.state.auth.enabled,
    })


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, key: Annotated[str, Form(max_length=500)]) -> HTMLResponse:
    try:
        request.app.state.auth.check(key.strip(), "read")
    except AuthError as exc:
        return templates.TemplateResponse(request, "login.html", {"error": exc.message}, 401)
    response = RedirectResponse("/", status_code=303)
    login_cookie(response, key.strip(), request)
    return response


@router.post("/logout")
async def logout() -> RedirectResponse:
    response = RedirectResponse("/", status_code=303)
    logout_cookie(response)
    return response
