"""Request guards: the rotating client key and the admin secret, with brute-force damping."""
# No `from __future__ import annotations` here: dependency-injector reads the
# Annotated[..., Depends(Provide[...])] markers from the live signature.


from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import Depends, Header, Request

from app.domain.attempts import FailedAttemptLimiter
from app.domain.errors import InvalidAdminSecret, InvalidApiKey
from app.domain.keys import AdminGuard, KeyRotationService


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


def pick_client_address(peer: str | None, forwarded_for: str | None, *, trust_proxy_headers: bool,
                        trusted_hops: int) -> str:
    """The address brute-force damping counts by.

    Behind proxies that each append to X-Forwarded-For, the client is the entry
    `trusted_hops` from the right; anything further left the client wrote itself.
    """
    if trust_proxy_headers and forwarded_for:
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        if hops:
            return hops[-min(trusted_hops, len(hops))]
    return peer or "unknown"


@inject
async def client_address(
    request: Request,
    trust_proxy_headers: Annotated[bool, Depends(Provide["config.trust_proxy_headers"])],
    trusted_hops: Annotated[int, Depends(Provide["config.trusted_proxy_hops"])],
) -> str:
    """The requesting client's address (TCP peer, or X-Forwarded-For when trusted)."""
    forwarded_for = ",".join(request.headers.getlist("x-forwarded-for")) or None
    return pick_client_address(request.client.host if request.client else None, forwarded_for,
                               trust_proxy_headers=bool(trust_proxy_headers),
                               trusted_hops=int(trusted_hops or 1))


@inject
async def require_client_key(
    keys: Annotated[KeyRotationService, Depends(Provide["key_service"])],
    limiter: Annotated[FailedAttemptLimiter, Depends(Provide["attempt_limiter"])],
    client: Annotated[str, Depends(client_address)],
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
    api_key: Annotated[str | None, Header()] = None,
) -> None:
    """Reject the request (401) unless it carries the current client key (429 after many wrong ones)."""
    presented = presented_key(authorization, x_api_key, api_key)
    if presented is None:
        keys.authenticate(None)  # a missing key is no guess: 401 with a hint, not counted
    limiter.check(client)
    try:
        keys.authenticate(presented)
    except InvalidApiKey:
        limiter.record_failure(client)
        raise


@inject
async def require_admin(
    guard: Annotated[AdminGuard, Depends(Provide["admin_guard"])],
    limiter: Annotated[FailedAttemptLimiter, Depends(Provide["attempt_limiter"])],
    client: Annotated[str, Depends(client_address)],
    admin_secret: Annotated[str | None, Header()] = None,
) -> None:
    """Reject the request unless it carries the admin secret (403 when none is set, 429 after many wrong)."""
    if admin_secret:
        limiter.check(client)
    try:
        guard.check(admin_secret)
    except InvalidAdminSecret:
        if admin_secret:
            limiter.record_failure(client)
        raise
