"""Readiness: `/readyz` answers 503 until the local model is loaded when it is preloaded,
and while client keys cannot be served (the key store is unusable)."""
# No `from __future__ import annotations` here: dependency-injector reads the
# Annotated[..., Depends(Provide[...])] markers from the live signature.

from typing import Annotated

from dependency_injector.wiring import Provide, inject, provided
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from app.domain.keys import KeyRotationService
from app.entrypoints.http.errors import error_body
from app.ports.model_loader import ModelLoader

router = APIRouter()


@router.get("/readyz", summary="Readiness", response_model=None)
@inject
async def readyz(
    local: Annotated[ModelLoader, Depends(Provide["local"])],
    preload: Annotated[bool, Depends(Provide["settings", provided().local_preload])],
    keys: Annotated[KeyRotationService, Depends(Provide["key_service"])],
) -> dict[str, str] | JSONResponse:
    """200 once the server can answer without waiting for a model load.

    With LOCAL_PRELOAD the local model loads at start and this answers 503
    until it is in memory; without it the model loads on first use, so the
    server is ready at once.
    """
    key_store = await keys.health_async()
    if not key_store.serving:
        return JSONResponse(error_body(f"Client keys cannot be served: {key_store.message}.", type_="api_error",
                                       code="key_store_unavailable"),
                            status_code=503, headers={"Retry-After": "30"})
    if local.is_loaded:
        return {"status": "ready", "local_model": "loaded"}
    if not preload:
        return {"status": "ready", "local_model": "loads on first use"}
    return JSONResponse(error_body("The local model is still loading.", type_="api_error",
                                   code="model_loading"),
                        status_code=503, headers={"Retry-After": "5"})
