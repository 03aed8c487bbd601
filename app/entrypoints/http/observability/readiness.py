"""`GET /readyz`: what the server can serve now, in JSON; 503 when it cannot serve requests.

503 when the key store cannot serve (no request could be authenticated), while a
preloaded local model is loading or failed to load, and when there is no
upstream and the local model cannot load. An open circuit is reported, not
failed: the local tier answers meanwhile, and a failing readiness check would
have Render restart a healthy instance.
"""
# No `from __future__ import annotations` here: dependency-injector reads the
# Annotated[..., Depends(Provide[...])] markers from the live signature.

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Protocol

import anyio
from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from app.domain.readiness import LocalWarmup
from app.entrypoints.http.errors import error_body

router = APIRouter(tags=["Operations"])


class KeyHealth(Protocol):
    """The key store's state, as branch `keys`' KeyStoreHealth reports it."""

    serving: bool
    readable: bool
    writable: bool
    message: str


class KeyHealthCheck(Protocol):
    """Something that says whether client keys can be served (blocking: it may touch the disk)."""

    def health(self) -> KeyHealth:
        """The key store's state now."""
        ...


class UpstreamRoute(Protocol):
    """The upstream as readiness sees it."""

    def model_ids(self) -> Sequence[str]:
        """Its models, the one it uses first."""
        ...


class CircuitState(Protocol):
    """The upstream's circuit breaker."""

    @property
    def state(self) -> str:
        """`closed`, `half_open` or `open`."""
        ...


class LocalTier(Protocol):
    """The local model as readiness sees it."""

    @property
    def is_loaded(self) -> bool:
        """True once the weights are in memory."""
        ...

    def model_ids(self) -> Sequence[str]:
        """Its one model id."""
        ...


class ModelFiles(Protocol):
    """Where the local model's files are (a path, or a hub id)."""

    path: str


def _files_present(files: ModelFiles | None) -> bool:
    """Whether the local model's files are where the settings say (a hub id is taken as loadable)."""
    if files is None:
        return True
    path = Path(files.path).expanduser()
    gguf = getattr(files, "gguf_file", None)
    if (path / gguf).exists() if gguf else path.exists():
        return True
    return not (files.path.startswith(("/", ".", "~")) or files.path.endswith(".gguf"))


def _local_state(local: LocalTier, warmup: LocalWarmup, files: ModelFiles | None) -> dict[str, Any]:
    state = "loaded" if local.is_loaded else (warmup.state or "on_first_use")
    loadable = state == "loaded" or (state != "failed" and _files_present(files))
    models = local.model_ids()
    return {"model": models[0] if models else None, "state": state, "loadable": loadable}


@router.get("/readyz", summary="Readiness: key store, Groq route, local tier", response_model=None)
@inject
async def readyz(
    keys: Annotated[KeyHealthCheck, Depends(Provide["key_health"])],
    upstream: Annotated[UpstreamRoute | None, Depends(Provide["guarded_upstream"])],
    breaker: Annotated[CircuitState, Depends(Provide["circuit_breaker"])],
    local: Annotated[LocalTier, Depends(Provide["local"])],
    warmup: Annotated[LocalWarmup, Depends(Provide["local_warmup"])],
    files: Annotated[ModelFiles | None, Depends(Provide["local_source"])],
) -> JSONResponse:
    """200 when requests are served now; 503 (with an error envelope naming the cause) when not."""
    key = await anyio.to_thread.run_sync(keys.health)
    local_tier = _local_state(local, warmup, files)
    models = upstream.model_ids() if upstream is not None else []
    body: dict[str, Any] = {
        "key_store": {"serving": key.serving, "readable": key.readable, "writable": key.writable,
                      "message": key.message},
        "groq": ({"configured": True, "model": models[0] if models else None, "circuit": breaker.state}
                 if upstream is not None else {"configured": False}),
        "local": local_tier,
    }
    problem = _problem(key.serving, local_tier, upstream is not None)
    if problem is None:
        degraded = (upstream is not None and breaker.state != "closed") or not local_tier["loadable"]
        return JSONResponse({"status": "degraded" if degraded else "ready", **body})
    code, message = problem
    body = {"status": "not_ready", **body, **error_body(message, type_="api_error", code=code)}
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


def _problem(keys_serving: bool, local: dict[str, Any], has_upstream: bool) -> tuple[str, str] | None:
    if not keys_serving:
        return "key_store_unavailable", "The client key store cannot serve; see key_store.message."
    if local["state"] == "loading":
        return "model_loading", "The local model is still loading."
    if local["state"] == "failed":
        return "model_unavailable", "The local model failed to load; the server's log says why."
    if not has_upstream and not local["loadable"]:
        return "model_unavailable", "No upstream is configured and the local model cannot load."
    return None
