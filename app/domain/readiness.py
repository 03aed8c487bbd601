"""Readiness facts the HTTP edge reports: the key store's health and the local model's warm-up."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from app.domain.keys import KeyRotationService
from app.ports import KeyStore
from app.ports.model_loader import ModelLoader

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KeyHealth:
    """Whether client keys can be served, read and replaced; `message` names no secret."""

    serving: bool
    readable: bool
    writable: bool
    message: str


class ServiceKeyHealth:
    """Key store health from the outside: read the store, then ask the service for the current key.

    Stands in until the key service answers `health()` itself (branch `keys`);
    `writable` is inferred (a key in hand after a rotation was due means the
    write worked), not probed.
    """

    def __init__(self, *, keys: KeyRotationService, store: KeyStore) -> None:
        self._keys = keys
        self._store = store

    def health(self) -> KeyHealth:
        """Whether a client key can be read, and replaced when due."""
        try:
            readable = self._store.load() is not None
        except Exception:
            readable = False
        try:
            self._keys.current()
        except Exception as exc:
            log.warning("key store cannot serve: %s", type(exc).__name__)
            return KeyHealth(serving=False, readable=readable, writable=False,
                             message=f"the key store failed ({type(exc).__name__})")
        return KeyHealth(serving=True, readable=True, writable=True, message="ok")


class LocalWarmup:
    """The LOCAL_PRELOAD load of the local model, followed so readiness can tell loading from failed."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def start(self, local: ModelLoader) -> None:
        """Start loading `local` in the background."""
        self._task = asyncio.create_task(local.load())
        self._task.add_done_callback(self._report)

    def cancel(self) -> None:
        """Stop a load still running (shutdown)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    @property
    def state(self) -> str | None:
        """None (not preloading), `loading`, `loaded` or `failed`."""
        if self._task is None:
            return None
        if not self._task.done():
            return "loading"
        return "failed" if self._task.cancelled() or self._task.exception() else "loaded"

    @staticmethod
    def _report(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("the local model failed to load: %s", type(task.exception()).__name__)
