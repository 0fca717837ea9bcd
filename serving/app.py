"""The FastAPI application: `create_app(settings, loader)` wires state, auth, metrics and routes.

Nothing happens at import. At start-up the first generation loads in a worker thread, so
`/healthz` answers at once and `/readyz` turns ready when the scores are in memory. Tests pass
their own `loader` (or `load_on_start=False`) to serve stubs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import Route

from serving import errors
from serving.auth import Authenticator
from serving.history import ScoreHistory, history_dir
from serving.limits import BodyLimitMiddleware, body_limit
from serving.metrics import Metrics, MetricsMiddleware
from serving.monitoring.latest import LatestResult
from serving.routes import (
    account_page,
    changes,
    health,
    history,
    models,
    monitoring,
    opportunities,
    page,
    scores,
)
from serving.settings import ServingSettings
from serving.state import Loader, StateHolder, load_generation

log = logging.getLogger(__name__)

DESCRIPTION = """Churn and upsell propensity for key-account management.

CRM systems score one account or thousands (`POST /v1/score`, `GET /v1/accounts/{id}`);
account managers read ranked lists (`GET /v1/opportunities`, or the page at `/`), and an
account's scores over time from the daily run's score history
(`GET /v1/accounts/{id}/history`).
Authenticate with an API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`
(scope `read`; `admin` for `/v1/admin/reload`). The page's sign-in cookie only reads (GET).

Every error body is JSON: `{"detail": {"error": "<code>", "message": "<what to do>"}}`, or for
422 a list of `{"type", "loc", "msg", "input"}` naming each field and rule (with at most an
80-character excerpt of the bad value). Bodies over `max_body_bytes` get 413 unread."""
MCP_PATH = "/mcp"  # the MCP tools for AI assistants (streamable HTTP)
DOCS_ASSETS = "/docs-assets"  # Swagger UI and ReDoc files, served from the fastapi-offline package


def create_app(settings: ServingSettings, loader: Loader = load_generation,
               load_on_start: bool = True) -> FastAPI:
    holder = StateHolder(settings, loader)
    auth = Authenticator.from_settings(settings)
    scores_over_time = ScoreHistory(history_dir(settings.data_dir))  # one reader: route and MCP
    mcp_app, mcp_sessions = mcp_endpoint(settings, holder, auth, scores_over_time)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info(auth.check_key_store())
        task = None
        if load_on_start:
            task = asyncio.create_task(asyncio.to_thread(_first_load, holder))
        async with mcp_sessions():
            yield
        if task is not None and not task.done():
            await asyncio.wait([task], timeout=1)

    # /docs and /redoc load their scripts from this server (no CDN): fastapi-offline ships them.
    app: FastAPI = FastAPIOffline(
        title="propensity scoring API", version="1.0.0", description=DESCRIPTION,
        lifespan=lifespan, static_url=DOCS_ASSETS,
        swagger_ui_parameters={"validatorUrl": None})  # no badge from the online validator
    app.state.settings = settings
    app.state.holder = holder
    app.state.auth = auth
    app.state.monitoring = LatestResult(settings.monitoring_dir)
    app.state.metrics = Metrics(lambda: holder.current, app.state.monitoring.latest)
    app.state.history = scores_over_time  # GET /v1/accounts/{id}/history
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=body_limit(settings.max_body_bytes,
                                                                settings.max_batch_accounts))
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)  # outermost: counts 413s
    for module in (health, scores, history, opportunities, changes, models, monitoring,
                   page, account_page):
        app.include_router(module.router)
    app.router.routes.append(Route(MCP_PATH, mcp_app, methods=["GET", "POST", "DELETE"]))

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        return Response(generate_latest(request.app.state.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    return app


def mcp_endpoint(settings: ServingSettings, holder: StateHolder, auth: Authenticator,
                 history: ScoreHistory):
    """The MCP tools over the served generation (see serving.mcp_server), under the API keys."""
    from serving.mcp_server import build_server, http_endpoint, served_changes

    current = lambda: holder.current  # noqa: E731 - read at each call: a reload swaps it
    server = build_server(current, lambda: history, served_changes(settings, current))
    return http_endpoint(server, auth)


def _first_load(holder: StateHolder) -> None:
    ok, error = holder.reload()
    if not ok:
        log.error("not ready: %s (fix it, then POST /v1/admin/reload)", error)
