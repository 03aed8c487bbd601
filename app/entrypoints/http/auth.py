"""Request guards: the rotating client key and the admin secret."""
# No `from __future__ import annotations` here: dependency-injector reads the
# Annotated[..., Depends(Provide[...])] markers from the live signature.


from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import Depends, Header

from app.domain.keys import AdminGuard, KeyRotationService


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key from `x-api-key` (the seed) or `Authorization: Bearer` (OpenAI clients)."""
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


@inject
async def require_client_key(
    keys: Annotated[KeyRotationService, Depends(Provide["key_service"])],
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> None:
    """Reject the request (401) unless it carries the current client key."""
    keys.authenticate(presented_key(authorization, x_api_key))


@inject
async def require_admin(
    guard: Annotated[AdminGuard, Depends(Provide["admin_guard"])],
    admin_secret: Annotated[str | None, Header()] = None,
) -> None:
    """Reject the request unless it carries the admin secret (403 when none is set)."""
    guard.check(admin_secret)
