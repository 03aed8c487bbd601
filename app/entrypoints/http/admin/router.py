"""`GET /current-key` (the seed's) and `POST /rotate-key`."""
# No `from __future__ import annotations` here: FastAPI reads the
# Annotated[..., Depends(...)] markers from the live signature.

from fastapi import APIRouter, Depends, Response

from app.entrypoints.http.admin.wire import CurrentKey
from app.entrypoints.http.auth import require_admin
from app.entrypoints.http.deps import KeyServiceDep
from app.entrypoints.http.errors import ERROR_RESPONSES
from app.entrypoints.http.wire import model_response

# Keys must not linger in a cache between the server and the administrator.
NO_STORE = {"Cache-Control": "no-store"}
router = APIRouter(dependencies=[Depends(require_admin)], responses=ERROR_RESPONSES, tags=["admin"])


@router.get("/current-key", response_model=CurrentKey, summary="Read the current client key")
async def current_key(keys: KeyServiceDep) -> Response:
    """The valid client key and its expiry (ISO 8601, UTC)."""
    return model_response(CurrentKey.of(await keys.current_async()), headers=NO_STORE)


@router.post("/rotate-key", response_model=CurrentKey,
             summary="Replace the client key now (409 when keys are derived from KEY_SECRET)")
async def rotate_key(keys: KeyServiceDep) -> Response:
    """Mint a new client key at once (a leaked key) and return it with its expiry."""
    return model_response(CurrentKey.of(await keys.rotate_now_async()), headers=NO_STORE)
