"""The scoring API's read-only capabilities as MCP tools, for AI assistants.

One :class:`mcp.server.mcpserver.MCPServer` (the official ``mcp`` SDK) with four tools:
an account's scores and reasons, the ranked opportunity lists, an account's score history and
what changed since an earlier run. Each tool calls the same functions as the HTTP routes, on
the generation being served, so an assistant and the CRM see the same numbers.

Two transports: ``propensity serve`` mounts it as streamable HTTP under ``/mcp`` behind the
same API keys (scope ``read``; see :class:`KeyGate`), and ``propensity mcp`` runs it over stdio
for a local assistant, loading the champions itself. A tool's bad argument (an unknown account,
owner or date) is a tool error whose text says what was wrong, never a traceback.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from typing import Any, Literal

import numpy as np
import pandas as pd
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.auth import Authenticator, AuthError, credentials
from serving.history import ScoreHistory
from serving.ranking import KINDS, ranked_items
from serving.results import item
from serving.row import REASON_COLUMNS
from serving.settings import ServingSettings
from serving.state import Generation

NAME = "propensity"
INSTRUCTIONS = (
    "Churn and upsell propensity for key-account management. Probabilities are calibrated "
    "(P(churn) and P(expansion) within the models' horizon). Use list_opportunities to find "
    "accounts to save (kind=churn, by ARR at risk) or grow (kind=upsell / cross_sell), "
    "get_account for one account's scores and reasons, account_history for its scores over "
    "time, and what_changed for the accounts whose risk moved most since an earlier run."
)
MAX_LIMIT = 200
NOT_SERVING = ("no scores are being served yet (the models or snapshot are loading, or failed "
               "to load: see /v1/models)")
OpportunityKind = Literal["churn", "upsell", "cross_sell"]
Current = Callable[[], Generation | None]
Changes = Callable[[str, date | None, str | None, int], dict]  # kind, since, owner, limit


def build_server(current: Current, history: Callable[[], ScoreHistory],
                 changes: Changes | None = None) -> MCPServer:
    """The MCP server over the generation ``current()`` returns at each call (a reload swaps
    it under a running server) and the score history; ``changes`` answers ``what_changed``
    (the same function as ``GET /v1/changes``; None leaves the tool out)."""
    server = MCPServer(NAME, instructions=INSTRUCTIONS)

    def served() -> Generation:
        generation = current()
        if generation is None:
            raise ToolError(NOT_SERVING)
        return generation

    @server.tool()
    def get_account(account_id: str, reasons: bool = True) -> dict[str, Any]:
        """One account's churn and upsell probability, risk tier, ARR at risk, expected
        expansion, next best product and play, with the strongest reasons each way."""
        scorer = served().scorer
        row = scorer.row_of.get(account_id)
        if row is None:
            raise ToolError(f"unknown account {account_id!r}: not in the snapshot of "
                            f"{scorer.as_of}")
        explained = scorer.reasons([row], tuple(scorer.models))[0] if reasons else None
        return {"as_of": scorer.as_of.isoformat(), "model_versions": scorer.versions(),
                **_plain(item(scorer.cols, row, explained))}

    @server.tool()
    def list_opportunities(kind: OpportunityKind = "churn", owner: str | None = None,
                           segment: str | None = None, limit: int = 20) -> dict[str, Any]:
        """Accounts ranked by expected value: churn by ARR at risk (accounts to save),
        upsell by expected expansion and cross_sell by expected cross-sell ARR (to grow);
        optionally for one account manager (owner) or segment."""
        scorer = served().scorer
        _check_filter("owner", owner, scorer.owners())
        _check_filter("segment", segment, scorer.segments())
        if kind not in KINDS:
            raise ToolError(f"kind {kind!r}: choose one of {', '.join(KINDS)}")
        found, _, total = ranked_items(scorer, kind, owner, segment,
                                       _limit(limit), None, True)
        return {"kind": kind, "as_of": scorer.as_of.isoformat(), "total": total,
                "items": [_plain(i) for i in found]}

    @server.tool()
    def account_history(account_id: str, from_date: str | None = None,
                        to_date: str | None = None) -> dict[str, Any]:
        """An account's scores in every daily run between two dates (ISO, inclusive), oldest
        first, with the model versions that produced them."""
        start, end = _date("from_date", from_date), _date("to_date", to_date)
        if start and end and start > end:
            raise ToolError(f"from_date {start} is after to_date {end}")
        rows = history().account(account_id, start, end)
        if rows.empty:
            raise ToolError(f"no scores for account {account_id!r} in the history"
                            + (f" between {start or '…'} and {end or '…'}"
                               if start or end else ""))
        items = rows.to_dict(orient="records")
        for entry in items:  # a batch file's reasons are JSON text: give the assistant objects
            for column in REASON_COLUMNS.values():
                if isinstance(entry.get(column), str):
                    entry[column] = json.loads(entry[column])
        return {"account_id": account_id, "items": _plain(items)}

    if changes is not None:
        @server.tool()
        def what_changed(kind: Literal["churn", "upsell"] = "churn", since: str | None = None,
                         owner: str | None = None, limit: int = 20) -> dict[str, Any]:
            """The accounts whose churn (or upsell) probability moved most since an earlier
            run (default: about a week before the newest), weighted by ARR, risers first,
            each with the features that drove the change and their values before and
            after."""
            return _plain(changes(kind, _date("since", since), owner, _limit(limit)))

    return server


def served_changes(settings: ServingSettings, current: Current) -> Changes:
    """``what_changed``'s answer: the same comparison (and cache) as ``GET /v1/changes`` on
    the served generation, its errors as tool errors."""
    def answer(kind: str, since: date | None, owner: str | None, limit: int) -> dict:
        from serving.changes import ChangesError
        from serving.routes.changes import generation_change_set

        generation = current()
        if generation is None:
            raise ToolError(NOT_SERVING)
        try:
            found = generation_change_set(settings, generation, kind, since)
        except ChangesError as exc:
            raise ToolError(exc.message) from None
        _check_filter("owner", owner, found.owners())
        rows, ranks, _, total = found.page(owner, None, limit, None)
        return {"kind": kind, "as_of": str(found.runs.after),
                "previous_as_of": str(found.runs.before), "model_changed": found.model_changed,
                "total": total, "items": found.items(rows, ranks)}
    return answer


def _check_filter(name: str, value: str | None, known: list[str]) -> None:
    if value is not None and value not in known:
        shown = ", ".join(known[:20]) + (" …" if len(known) > 20 else "")
        raise ToolError(f"no account has {name} {value[:40]!r}; {name}s: {shown}")


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ToolError(f"limit {limit}: between 1 and {MAX_LIMIT}")
    return limit


def _date(name: str, text: str | None) -> date | None:
    if text is None or text == "":
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ToolError(f"{name} {text[:40]!r} is not an ISO date (YYYY-MM-DD)") from None


def _plain(value: Any) -> Any:
    """JSON-safe values: NaN becomes None (an assistant reads null, not an invalid token),
    numpy scalars become Python numbers, dates ISO text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (date, pd.Timestamp)):
        return value.isoformat()[:10]
    return value


class KeyGate:
    """ASGI guard in front of the MCP endpoint: the API's own keys, scope ``read``, from the
    ``Authorization: Bearer`` or ``X-API-Key`` header (never the page's cookie: an assistant
    is not a browser). A refused request gets the API's JSON error body and status."""

    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app, self.auth = app, auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            key, source = credentials(Request(scope))
            try:
                self.auth.check(key if source == "header" else None, "read")
            except AuthError as exc:
                body = {"detail": {"error": exc.error, "message": exc.message}}
                extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
                await JSONResponse(body, exc.status, headers=extra)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class HttpEndpoint:
    """The streamable-HTTP endpoint (stateless, JSON answers: any worker can answer any
    request). Its session manager runs for one app lifespan and cannot be restarted, so each
    lifespan (``running``) makes a new one; before it starts the endpoint answers 503.
    DNS-rebinding protection is on when authentication is off (then a web page on another
    host must not reach a local server through a rebound name)."""

    def __init__(self, server: MCPServer, auth: Authenticator) -> None:
        self.server = server
        self.security = TransportSecuritySettings(
            enable_dns_rebinding_protection=not auth.enabled,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "testserver"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"])
        self.app: ASGIApp | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self.server.streamable_http_app(stateless_http=True, json_response=True,
                                        transport_security=self.security)
        manager = self.server.session_manager
        self.app = StreamableHTTPASGIApp(manager)
        try:
            async with manager.run():
                yield
        finally:
            self.app = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            body = {"detail": {"error": "not_ready", "message": "the MCP endpoint is starting"}}
            await JSONResponse(body, 503)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def http_endpoint(server: MCPServer, auth: Authenticator) -> tuple[ASGIApp, Callable]:
    """The endpoint behind the key gate, and the context manager to run for each lifespan."""
    endpoint = HttpEndpoint(server, auth)
    return KeyGate(endpoint, auth), endpoint.running
