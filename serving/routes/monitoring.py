"""The newest monitor result: drift, score drift and performance (``propensity monitor``)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from serving.deps import JSON, ReadKey
from serving.responses import AUTH_UNAVAILABLE, NO_MONITORING, UNAUTHORIZED
from serving.schemas import MonitoringResponse

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/monitoring", response_model=MonitoringResponse,
            summary="Drift and performance of the served models (newest monitor result)",
            responses={**UNAUTHORIZED, **NO_MONITORING, **AUTH_UNAVAILABLE})
def monitoring(request: Request, _key: ReadKey) -> JSON:
    settings = request.app.state.settings
    found = request.app.state.monitoring.latest()
    if found is None:
        raise HTTPException(404, {"error": "no_monitoring", "message":
                                  f"no monitor result in {settings.monitoring_dir}: run "
                                  "`propensity monitor`"})
    return JSON(found)
