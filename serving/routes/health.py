"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request

from serving.deps import JSON
from serving.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
def healthz() -> JSON:
    return JSON({"status": "ok"})


@router.get("/readyz", response_model=Health, summary="Readiness: models and snapshot loaded",
            responses={503: {"model": Health, "description": "Still loading (or failed)"}})
def readyz(request: Request) -> JSON:
    holder = request.app.state.holder
    if holder.current is None:
        if holder.last_error is None:
            return JSON({"status": "loading"}, 503)
        body = {"status": "failed", "reason": holder.last_error}
        if holder.last_missing:
            body["missing"] = holder.last_missing
        return JSON(body, 503)
    return JSON({"status": "ready"})
