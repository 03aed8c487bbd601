"""Admin endpoints (header `admin-secret`): read and rotate the client key."""
# No `from __future__ import annotations` here: dependency-injector reads the
# Annotated[..., Depends(Provide[...])] markers from the live signature.


from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Response

from app.domain.keys import KeyRotationService
from app.domain.models import ApiKey
from app.entrypoints.http.auth import require_admin


async def no_store(response: Response) -> None:
    """Keys must not linger in a cache between the server and the administrator."""
    response.headers["Cache-Control"] = "no-store"


router = APIRouter(dependencies=[Depends(no_store)])


def key_to_wire(key: ApiKey) -> dict[str, str]:
    """The key and its expiry (ISO 8601, UTC), as the seed's `/current-key` returns them."""
    return {"api_key": key.value, "expiry": key.expires_at.isoformat()}


@router.get("/current-key", dependencies=[Depends(require_admin)], summary="Read the current client key")
@inject
async def current_key(
    keys: Annotated[KeyRotationService, Depends(Provide["key_service"])],
) -> dict[str, str]:
    """The valid client key and its expiry (ISO 8601, UTC)."""
    return key_to_wire(await keys.current_async())


@router.post("/rotate-key", dependencies=[Depends(require_admin)],
             summary="Replace the client key now (409 when keys are derived from KEY_SECRET)")
@inject
async def rotate_key(
    keys: Annotated[KeyRotationService, Depends(Provide["key_service"])],
) -> dict[str, str]:
    """Mint a new client key at once (a leaked key) and return it with its expiry."""
    return key_to_wire(await keys.rotate_now_async())
