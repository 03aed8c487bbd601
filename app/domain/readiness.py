"""The local model's warm-up (LOCAL_PRELOAD), followed so readiness can tell loading from loaded or failed."""

from __future__ import annotations

import asyncio
import logging

from app.ports.model_loader import ModelLoader

log = logging.getLogger(__name__)


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
