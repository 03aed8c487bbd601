"""`/healthz`: 200 while the process is up; `/readyz`: what can be served now, 503 when requests cannot be."""
# No `from __future__ import annotations` here: dependency-injector reads the
# Annotated[..., Depends(Provide[...])] markers from the live signature.

from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from app.domain.keys import KeyRotationService
from app.domain.readiness import LocalWarmup
from app.entrypoints.http.errors import ERROR_RESPONSES, error_body
from app.entrypoints.http.health.readiness import CircuitState, LocalTier, ModelFiles, UpstreamRoute, local_state, report
from app.entrypoints.http.health.wire import Health
from app.entrypoints.http.wire import model_response

router = APIRouter(tags=["health"])

HEALTHY = Health()


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Response:
    """200 while the process is up."""
    return model_response(HEALTHY)


@router.get("/readyz", response_model=None, responses=ERROR_RESPONSES,
            summary="Readiness: key store, Groq route, local tier")
@inject
async def readyz(
    keys: Annotated[KeyRotationService, Depends(Provide["key_service"])],
    upstream: Annotated[UpstreamRoute | None, Depends(Provide["guarded_upstream"])],
    breaker: Annotated[CircuitState, Depends(Provide["circuit_breaker"])],
    local: Annotated[LocalTier, Depends(Provide["local"])],
    warmup: Annotated[LocalWarmup, Depends(Provide["local_warmup"])],
    files: Annotated[ModelFiles | None, Depends(Provide["local_source"])],
) -> JSONResponse:
    """200 when requests are served now; 503 with an error envelope naming the cause when not.

    With LOCAL_PRELOAD the local model loads at start and this answers 503
    until it is in memory; without it the model loads on first use, so the
    server is ready at once.
    """
    body, problem = report(await keys.health_async(), upstream, breaker, local_state(local, warmup, files))
    if problem is None:
        return JSONResponse(body)
    return JSONResponse({**body, **error_body(problem.message, type_="api_error", code=problem.code)},
                        status_code=503, headers={"Retry-After": str(problem.retry_after)})
