"""`propensity serve`: the scoring API and the account managers' page under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from features.cli_options import DataDir, fail, settings_of


def serve_cmd(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="Serve without API keys (local development only).")] = False,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = True,
    data_dir: DataDir = None,
) -> None:
    """Serve the scoring API (/v1, OpenAPI docs at /docs), the page at / and /metrics.

    Loads the champion models from MLflow and the newest feature snapshot; /readyz turns
    ready once every account is scored. One process: the scores live in its memory."""
    import logging

    import uvicorn

    from serving.app import create_app
    from serving.keys import KeyStoreError
    from serving.settings import ServingSettings

    settings = settings_of(ServingSettings, data_dir)
    if no_auth:
        settings = settings.model_copy(update={"auth_enabled": False})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    try:
        app = create_app(settings)
        app.state.auth.check_key_store()
    except KeyStoreError as exc:
        fail(str(exc))
    # proxy_headers off: uvicorn would otherwise take X-Forwarded-Proto from any local client;
    # the app honours it only with trust_forwarded_proto (serving.auth.public_scheme).
    uvicorn.run(app, host=host, port=port, workers=1, loop="uvloop", http="httptools",
                access_log=access_log, log_level="info", proxy_headers=False)


def mcp_cmd(data_dir: DataDir = None) -> None:
    """Serve the MCP tools over stdio, for an AI assistant that starts this command itself
    (Claude Desktop, an IDE). Loads the champions and the newest snapshot like `serve`; the
    tools only read. Logs go to stderr: stdout carries the protocol."""
    import logging
    import sys

    from serving.history import ScoreHistory, history_dir
    from serving.mcp_server import build_server, served_changes
    from serving.settings import ServingSettings
    from serving.state import LoadError, load_generation

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_of(ServingSettings, data_dir)
    try:
        generation = load_generation(settings)
    except LoadError as exc:
        fail(f"cannot serve the MCP tools: {exc}")
    history = ScoreHistory(history_dir(settings.data_dir))
    current = lambda: generation  # noqa: E731
    build_server(current, lambda: history, served_changes(settings, current)).run("stdio")
