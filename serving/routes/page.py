"""The account managers' page: ranked lists, filters, reasons, plays, KPIs, CSV download.

Server-rendered (Jinja2), no JavaScript build. With auth on, the page asks once for a read
key and keeps it in an HttpOnly cookie (SameSite=Strict; it only reads, see serving.auth). The
sign-in and sign-out forms are refused when posted from another origin.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlencode

import numpy as np
from babel.dates import format_date
from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from serving.auth import AuthError, credentials, foreign_origin, login_cookie, logout_cookie
from serving.kpi_strip import strip
from serving.phrasing import money_formatter, plain, reason_text
from serving.ranking import CROSS_SELL_LIST, KINDS, CursorError, ranked_items, sorted_items
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


templates.env.filters["plain"] = plain
templates.env.globals["reason_text"] = reason_text
PROBABILITY = {"churn": "churn_probability", "upsell": "upsell_probability",
               CROSS_SELL_LIST: "next_best_product_probability"}
#: The page's sortable columns: sort key -> the direction a click sorts first. "rank" is the
#: list's own order (its value, descending); nulls always sort last.
SORTS: dict[str, Literal["asc", "desc"]] = {
    "rank": "asc", "account": "asc", "owner": "asc", "arr": "desc", "probability": "desc",
    "renewal": "asc"}
Sort = Literal["rank", "account", "owner", "arr", "probability", "renewal"]


def _signed_in(request: Request) -> bool:
    auth = request.app.state.auth
    if not auth.enabled:
        return True
    try:
        auth.check(credentials(request)[0], "read")
        return True
    except AuthError:
        return False


def list_sum(scorer: Scorer, kind: str, owner: str | None, segment: str | None) -> float:
    """The money a filtered list stands for: its ranking value summed over every account."""
    value = scorer.cols[KINDS[kind][1]].astype("float64")
    keep = ~np.isnan(value) & scorer.filter_mask(owner, segment)
    return float(value[keep].sum())


def month_label(month: str | None) -> str:
    """"2025-04" -> "April 2025" (the KPI strip's month)."""
    try:
        return date.fromisoformat(f"{month}-01").strftime("%B %Y")
    except (TypeError, ValueError):
        return month or ""


def sort_key(scorer: Scorer, kind: str, sort: str) -> np.ndarray:
    """One value per account to order a list by (`SORTS`)."""
    if sort == "renewal":
        return scorer.days_to_renewal()
    if sort in ("account", "owner"):
        column = scorer.cols["name" if sort == "account" else "owner"]
        names = [(v if isinstance(v, str) and v else None) for v in column]
        if sort == "account":
            names = [n or a for n, a in zip(names, scorer.ids, strict=True)]
        return np.array([n.casefold() if n else None for n in names], dtype=object)
    return scorer.cols["arr" if sort == "arr" else PROBABILITY[kind]].astype("float64")


def renewal_dates(scorer: Scorer, rows: list[int]) -> list[date | None]:
    """The next renewal of each account: as_of + its days to renewal (None: no fixed term)."""
    days = scorer.days_to_renewal()
    return [None if np.isnan(days[r]) else scorer.as_of + timedelta(days=int(days[r]))
            for r in rows]


@lru_cache(maxsize=8)
def _money(currency: str, locale: str):
    return money_formatter(currency, locale)


@router.get("/", response_class=HTMLResponse)
async def page(
    request: Request,
    kind: Annotated[Kind, Query()] = "churn",
    owner: Annotated[str | None, Query(max_length=200)] = None,
    segment: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
    sort: Annotated[Sort, Query(description="Column to order the list by")] = "rank",
    dir: Annotated[Literal["asc", "desc"] | None, Query()] = None,
    start: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
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
    settings = request.app.state.settings
    direction = dir or SORTS[sort]
    filters = {k: v for k, v in {"kind": kind, "owner": owner, "segment": segment}.items() if v}
    if sort == "rank" and direction == "asc":  # the list's own order: keyset pages
        try:
            items, next_cursor, total = await run_in_threadpool(
                ranked_items, scorer, kind, owner, segment, PAGE_SIZE, cursor, True)
        except CursorError:  # a stale or edited link: show the list from the top
            cursor = None
            items, next_cursor, total = await run_in_threadpool(
                ranked_items, scorer, kind, owner, segment, PAGE_SIZE, None, True)
        offset = items[0]["list_rank"] - 1 if items else 0
        first_url = "/?" + urlencode(filters) if cursor else None
        next_url = "/?" + urlencode({**filters, "cursor": next_cursor}) if next_cursor else None
    else:
        ordered = {**filters, "sort": sort, "dir": direction}
        key = sort_key(scorer, kind, sort)
        items, next_start, total = await run_in_threadpool(
            sorted_items, scorer, kind, owner, segment, key, direction == "desc", PAGE_SIZE,
            start)
        offset = start
        first_url = "/?" + urlencode(ordered) if start else None
        next_url = "/?" + urlencode({**ordered, "start": next_start}) if next_start else None
    for it, renews in zip(items, renewal_dates(scorer, [scorer.row_of[it["account_id"]]
                                                        for it in items]), strict=True):
        it["renewal_date"] = renews
    sort_urls = {key: "/?" + urlencode({**filters, "sort": key, "dir": (
        ("desc" if direction == "asc" else "asc") if key == sort else SORTS[key])})
        for key in SORTS}
    kpis = (strip(generation.kpi_parts, owner, segment)
            if generation.kpi_parts is not None else generation.kpis)
    return templates.TemplateResponse(request, "page.html", {
        "kind": kind, "kinds": KIND_LABELS, "ranking": KIND_RANKING[kind],
        "owner": owner, "segment": segment,
        "owners": scorer.owners(), "segments": scorer.segments(), "items": items,
        "total": total, "list_sum": list_sum(scorer, kind, owner, segment), "offset": offset,
        "task": KINDS[kind][0], "as_of": scorer.as_of, "kpis": kpis,
        "kpi_month": month_label(kpis.get("month")),
        "versions": scorer.versions(), "plays": PLAYS,
        "sort": sort, "dir": direction, "sort_urls": sort_urls,
        "money_text": _money(settings.currency, settings.currency_locale),
        "day": lambda d: format_date(d, "medium", locale=settings.currency_locale),
        "first_url": first_url, "next_url": next_url,
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
