"""`/healthz`: 200 while the process is up; `/readyz`: 503 until a preloaded local model is loaded."""
# No `from __future__ import annotations` here: dependency-injector reads the
# Annotated[..., Depends(Provide[...])] markers from the live signature.

from typing import Annotated

from dependency_injector.wiring import Provide, inject, provided
from fastapi import APIRouter, Depends, Response

from app.domain.keys import KeyRotationService
from app.entrypoints.http.errors import ERROR_RESPONSES, error_bytes
from app.entrypoints.http.health.wire import Health, Readiness
from app.entrypoints.http.wire import model_response
from app.ports.model_loader import ModelLoader

router = APIRouter(tags=["health"])

HEALTHY = Health()


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Response:
    """200 while the process is up."""
    return model_response(HEALTHY)


@router.get("/readyz", response_model=Readiness, responses=ERROR_RESPONSES, summary="Readiness")
@inject
async def readyz(
    local: Annotated[ModelLoader, Depends(Provide["local"])],
    preload: Annotated[bool, Depends(Provide["settings", provided().local_preload])],
    keys: Annotated[KeyRotationService, Depends(Provide["key_service"])],
) -> Response:
    """200 once the server can answer without waiting for a model load.

    With LOCAL_PRELOAD the local model loads at start and this answers 503
    until it is in memory; without it the model loads on first use, so the
    server is ready at once.
    """
    key_store = await keys.health_async()
    if not key_store.serving:
        return Response(error_bytes(f"Client keys cannot be served: {key_store.message}.", type_="api_error",
                                    code="key_store_unavailable"),
                        status_code=503, headers={"Retry-After": "30"}, media_type="application/json")
    if local.is_loaded:
        return model_response(Readiness(local_model="loaded"))
    if not preload:
        return model_response(Readiness(local_model="loads on first use"))
    return Response(error_bytes("The local model is still loading.", type_="api_error", code="model_loading"),
                    status_code=503, headers={"Retry-After": "5"}, media_type="application/json")
