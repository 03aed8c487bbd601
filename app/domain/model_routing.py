"""The upstream with each request's model picked from the live catalog, skipping models that cannot answer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from app.domain.errors import ModelRetired, RateLimited
from app.domain.model_catalog import ModelCatalog
from app.domain.models import ChatRequest, Completion
from app.domain.rate_limits import RateLimitGate
from app.domain.streams import ChunkStream
from app.ports import LLMProvider

log = logging.getLogger(__name__)

T = TypeVar("T")


class CatalogUpstream:
    """An LLMProvider that sends each request to the right live model of its upstream.

    The models come from the catalog (the named one when served, else the
    preference list's live ones); a model the upstream calls retired is retired
    in the catalog and the next one is tried; a model whose rate limit is used
    up is skipped until its reset. When no model is left the request fails with
    the reason (`ModelRetired`, `RateLimited`), so the caller can fall back.
    """

    def __init__(self, *, upstream: LLMProvider, catalog: ModelCatalog, gate: RateLimitGate) -> None:
        self._upstream = upstream
        self.catalog = catalog
        self._gate = gate

    @property
    def name(self) -> str:
        """The upstream's name."""
        return self._upstream.name

    def model_ids(self) -> Sequence[str]:
        """The models clients may name now."""
        return self.catalog.served_ids()

    async def complete(self, request: ChatRequest) -> Completion:
        """The answer of the first model that gives one."""
        return await self._first_answer(request, lambda r: self._upstream.complete(r))

    async def open_stream(self, request: ChatRequest) -> ChunkStream:
        """The stream of the first model that opens one."""
        return await self._first_answer(request, lambda r: self._upstream.open_stream(r))

    async def _first_answer(self, request: ChatRequest, ask: Callable[[ChatRequest], Awaitable[T]]) -> T:
        last: ModelRetired | None = None
        for model in self._candidates(request):
            try:
                return await ask(request.with_model(model))
            except ModelRetired as exc:
                self.catalog.retire(model, exc.message)
                last = exc
        raise last or ModelRetired("The upstream serves none of the configured models.")

    def _candidates(self, request: ChatRequest) -> list[str]:
        models = self.catalog.route(request.model)
        if not models:
            raise ModelRetired("The upstream serves none of the configured models (see the start-up log).")
        waits = {m: self._gate.blocked_for(m) for m in models}
        ready = [m for m in models if waits[m] is None]
        if not ready:
            wait = min(w for w in waits.values() if w is not None)
            raise RateLimited(f"The upstream's rate limit is used up for {', '.join(models)}; "
                              f"it resets in {wait:.1f} s.", retry_after=wait)
        return ready
