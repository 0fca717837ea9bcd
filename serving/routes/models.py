"""What is loaded, and switching to the current champions and newest snapshot."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from features import audit
from serving.deps import JSON, AdminKey, ReadKey
from serving.responses import (
    AUTH_UNAVAILABLE,
    FORBIDDEN_ADMIN,
    INVALID_QUERY,
    RELOAD_REFUSED,
    UNAUTHORIZED,
)
from serving.schemas import ModelsResponse, ReloadResponse

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models", response_model=ModelsResponse, summary="Loaded models and snapshot",
            responses={**UNAUTHORIZED, **AUTH_UNAVAILABLE})
def models(request: Request, _key: ReadKey) -> JSON:
    holder = request.app.state.holder
    generation = holder.current
    if generation is None:
        return JSON({"ready": False, "as_of": None, "accounts": 0, "reasons_ready": 0.0,
                     "loaded_at": None,
                     "models": [], "missing": holder.last_missing,
                     "last_reload_error": holder.last_error,
                     "last_reload_problems": [p.to_dict() for p in holder.last_problems]})
    scorer = generation.scorer
    return JSON({
        "ready": True, "as_of": scorer.as_of.isoformat(), "accounts": len(scorer.ids),
        "reasons_ready": round(scorer.warmed(), 4),
        "loaded_at": generation.loaded_at.isoformat(),
        "models": [{
            "task": task, "uri": m.uri, "version": m.version, "run_id": m.run_id,
            "window": m.meta.get("window"), "catalogue_version": m.meta.get("catalogue_version"),
            "test_metrics": {k: float(v) for k, v in (m.meta.get("test_metrics") or {}).items()
                             if isinstance(v, int | float) and math.isfinite(v)},
            "features": m.features,
        } for task, m in scorer.models.items()],
        "missing": generation.missing, "last_reload_error": holder.last_error,
        "last_reload_problems": [p.to_dict() for p in holder.last_problems],
    })


@router.post("/admin/reload", response_model=ReloadResponse,
             summary="Switch to the current champions and the newest snapshot",
             responses={**UNAUTHORIZED, **FORBIDDEN_ADMIN, **RELOAD_REFUSED, **INVALID_QUERY})
async def reload(
    request: Request, _key: AdminKey,
    force: Annotated[bool, Query(description="Accept a snapshot with far fewer accounts than "
                                 "the serving one (setting `reload_max_account_drop`); the "
                                 "other snapshot rules still hold.")] = False,
) -> JSON:
    """Builds the new generation off the event loop while the old one keeps answering; the
    switch is one reference swap, so requests in flight finish on the old one."""
    holder = request.app.state.holder
    ok, error = await run_in_threadpool(holder.reload, force)
    request.app.state.metrics.reloads.labels("ok" if ok else "failed").inc()
    generation = holder.current
    scorer = generation.scorer if generation else None
    body = {"reloaded": ok, "as_of": scorer.as_of.isoformat() if scorer else None,
            "model_versions": scorer.versions() if scorer else {}, "error": error}
    await run_in_threadpool(audit.record, request.app.state.settings.audit_path, "reload", ok,
                            key_name=_key.name if _key else None, actor="api",
                            detail=error or f"as_of {body['as_of']}, {body['model_versions']}")
    if ok:
        return JSON(body)
    if not holder.refused:
        return JSON(body, 503)
    return JSON({**body, "problems": [p.to_dict() for p in holder.last_problems]}, 409)
