"""`GET /metrics`: Prometheus' text format; behind the admin secret when METRICS_REQUIRE_ADMIN=true."""
# No `from __future__ import annotations` here: dependency-injector reads the
# Annotated[..., Depends(Provide[...])] markers from the live signature.

from typing import Annotated, Protocol

from dependency_injector.wiring import Provide, inject, provided
from fastapi import APIRouter, Depends, Header, Response

from app.domain.attempts import FailedAttemptLimiter
from app.domain.keys import AdminGuard
from app.entrypoints.http.auth import client_address, presented_key, require_admin
from app.entrypoints.http.errors import ERROR_RESPONSES

router = APIRouter(tags=["Operations"])


class MetricsSource(Protocol):
    """Something that renders the server's metrics."""

    def metrics_text(self, accept: str | None = None) -> tuple[bytes, str]:
        """The metrics, encoded for `accept`, and their content type."""
        ...


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}, **ERROR_RESPONSES})
@inject
async def metrics(
    source: Annotated[MetricsSource, Depends(Provide["telemetry"])],
    admin_only: Annotated[bool, Depends(Provide["settings", provided().metrics_require_admin])],
    guard: Annotated[AdminGuard, Depends(Provide["admin_guard"])],
    limiter: Annotated[FailedAttemptLimiter, Depends(Provide["attempt_limiter"])],
    client: Annotated[str, Depends(client_address)],
    accept: Annotated[str | None, Header()] = None,
    admin_secret: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """Every metric of this process. With METRICS_REQUIRE_ADMIN the admin secret is needed, as the
    `admin-secret` header or `Authorization: Bearer <secret>` (what Prometheus' `authorization` sends)."""
    if admin_only:
        secret = admin_secret or presented_key(authorization, None)
        await require_admin(guard=guard, limiter=limiter, client=client, admin_secret=secret)
    body, content_type = source.metrics_text(accept)
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})
