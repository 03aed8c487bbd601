"""Request guards: the rotating client key and the admin secret, with brute-force damping.

The client key is checked once, by `check_client_key`: the ClientKeyMiddleware
calls it before the request body is read; `require_client_key` marks the routes
that need a key (the middleware finds them by it) and checks the key itself
only when the middleware did not.
"""
# No `from __future__ import annotations` here: dependency-injector reads the
# Annotated[..., Depends(Provide[...])] markers from the live signature.


from collections.abc import MutableMapping
from typing import Annotated, Any

from dependency_injector.wiring import Provide, inject
from fastapi import Depends, Header, Request
from starlette.datastructures import Headers

from app.domain.attempts import ClientAddressPolicy, FailedAttemptLimiter
from app.domain.errors import InvalidAdminSecret, InvalidApiKey
from app.domain.keys import AdminGuard, KeyRotationService

_CHECKED = "client_key_checked"  # request-state flag set once the key passed


def presented_key(authorization: str | None, x_api_key: str | None,
                  api_key: str | None = None) -> str | None:
    """The key from `x-api-key` (the seed), `Authorization: Bearer` (OpenAI clients) or `api-key`."""
    for header in (x_api_key, api_key):
        if header and header.strip():
            return header.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


def forwarded_for(headers: Headers) -> str | None:
    """Every X-Forwarded-For header of the request, joined as one list."""
    return ",".join(headers.getlist("x-forwarded-for")) or None


async def check_client_key(headers: Headers, peer: str | None, state: MutableMapping[str, Any],
                           container: Any) -> None:
    """Raise unless `headers` carry the current client key: 401, 429 after many wrong, 503 without a store.

    On success, marks the request's `state` so the check is not repeated. `container` is the
    app's container, read directly (dependency-injector's `@inject` costs ~0.1 ms a call here).
    """
    keys: KeyRotationService = container.key_service()
    limiter: FailedAttemptLimiter = container.attempt_limiter()
    presented = presented_key(headers.get("authorization"), headers.get("x-api-key"), headers.get("api-key"))
    if presented is None:
        await keys.authenticate_async(None)  # a missing key is no guess: 401 with a hint, not counted
    client = container.client_addresses().client_address(peer, forwarded_for(headers))
    limiter.check(client)
    try:
        await keys.authenticate_async(presented)
    except InvalidApiKey:
        limiter.record_failure(client)
        raise
    state[_CHECKED] = True


async def require_client_key(request: Request) -> None:
    """Route guard: the request must carry the current client key (the middleware checked it already).

    Where the key goes is declared once for the OpenAPI document (`openapi.py`), not as header
    parameters: those would cost FastAPI three parameter lookups on every request.
    """
    state = request.scope.setdefault("state", {})
    if not state.get(_CHECKED):
        await check_client_key(request.headers, request.client.host if request.client else None, state,
                               request.app.state.container)


@inject
async def client_address(
    request: Request,
    addresses: Annotated[ClientAddressPolicy, Depends(Provide["client_addresses"])],
) -> str:
    """The requesting client's address (TCP peer, or X-Forwarded-For when trusted)."""
    return addresses.client_address(request.client.host if request.client else None,
                                    forwarded_for(request.headers))


@inject
async def require_admin(
    guard: Annotated[AdminGuard, Depends(Provide["admin_guard"])],
    limiter: Annotated[FailedAttemptLimiter, Depends(Provide["attempt_limiter"])],
    client: Annotated[str, Depends(client_address)],
    admin_secret: Annotated[str | None, Header()] = None,
) -> None:
    """Reject the request unless it carries the admin secret (403 when none is set, 429 after many wrong)."""
    presented = admin_secret.strip() if admin_secret else None  # trimmed like client keys
    if presented:
        limiter.check(client)
    try:
        guard.check(presented)
    except InvalidAdminSecret:
        if presented:
            limiter.record_failure(client)
        raise
