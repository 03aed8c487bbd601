"""What `/readyz` reports: the key store, the Groq route and the local tier, and whether requests are served now.

503 when the key store cannot serve (no request could be authenticated), while a
preloaded local model is loading or failed to load, and when there is no
upstream and the local model cannot load. An open circuit is reported, not
failed: the local tier answers meanwhile, and a failing readiness check would
have Render restart a healthy instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from app.domain.models import KeyStoreHealth
from app.domain.readiness import LocalWarmup

KEY_STORE_RETRY_SECONDS = 30  # an operator has to fix the store: no point asking again at once
MODEL_RETRY_SECONDS = 5


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


@dataclass(frozen=True, slots=True)
class NotReady:
    """Why requests cannot be served now: an error code, a message, and when to ask again."""

    code: str
    message: str
    retry_after: int


def files_present(files: ModelFiles | None) -> bool:
    """Whether the local model's files are where the settings say (a hub id is taken as loadable)."""
    if files is None:
        return True
    path = Path(files.path).expanduser()
    gguf = getattr(files, "gguf_file", None)
    if (path / gguf).exists() if gguf else path.exists():
        return True
    return not (files.path.startswith(("/", ".", "~")) or files.path.endswith(".gguf"))


def local_state(local: LocalTier, warmup: LocalWarmup, files: ModelFiles | None) -> dict[str, Any]:
    """The local tier: its model, `loaded`/`loading`/`failed`/`on_first_use`, and whether it can load."""
    state = "loaded" if local.is_loaded else (warmup.state or "on_first_use")
    loadable = state == "loaded" or (state != "failed" and files_present(files))
    models = local.model_ids()
    return {"model": models[0] if models else None, "state": state, "loadable": loadable}


def report(key: KeyStoreHealth, upstream: UpstreamRoute | None, breaker: CircuitState,
           local: dict[str, Any]) -> tuple[dict[str, Any], NotReady | None]:
    """The readiness body (without its status) and, when requests cannot be served, why."""
    models = upstream.model_ids() if upstream is not None else []
    body: dict[str, Any] = {
        "key_store": {"serving": key.serving, "readable": key.readable, "writable": key.writable,
                      "message": key.message},
        "groq": ({"configured": True, "model": models[0] if models else None, "circuit": breaker.state}
                 if upstream is not None else {"configured": False}),
        "local": local,
    }
    if problem := _problem(key, local, upstream is not None):
        return {"status": "not_ready", **body}, problem
    degraded = (upstream is not None and breaker.state != "closed") or not local["loadable"]
    return {"status": "degraded" if degraded else "ready", **body}, None


def _problem(key: KeyStoreHealth, local: dict[str, Any], has_upstream: bool) -> NotReady | None:
    if not key.serving:
        return NotReady("key_store_unavailable", f"Client keys cannot be served: {key.message}.",
                        KEY_STORE_RETRY_SECONDS)
    if local["state"] == "loading":
        return NotReady("model_loading", "The local model is still loading.", MODEL_RETRY_SECONDS)
    if local["state"] == "failed":
        return NotReady("model_unavailable", "The local model failed to load; the server's log says why.",
                        MODEL_RETRY_SECONDS)
    if not has_upstream and not local["loadable"]:
        return NotReady("model_unavailable", "No upstream is configured and the local model cannot load.",
                        MODEL_RETRY_SECONDS)
    return None
