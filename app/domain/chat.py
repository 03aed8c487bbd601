"""Chat service: picks the provider for a request and falls back to the local model."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from app.domain.errors import UpstreamUnavailable
from app.domain.model_catalog import ModelCatalog
from app.domain.models import ChatRequest, Completion
from app.domain.observation import NO_TELEMETRY, note_fallback
from app.domain.streams import ChunkStream
from app.ports import LLMProvider
from app.ports.telemetry import Telemetry

log = logging.getLogger(__name__)

Route = Literal["auto", "local"]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model a client can name, and which side serves it."""

    id: str
    provider: str
    context_window: int | None = None


class ChatService:
    """Routes chat requests to the upstream provider or the local one.

    `upstream` is None when no Groq key is configured: then everything is local.
    `catalog`, when the upstream has one, describes its live models (context windows).
    """

    def __init__(self, *, upstream: LLMProvider | None, local: LLMProvider,
                 fallback_to_local: bool = True, catalog: ModelCatalog | None = None,
                 telemetry: Telemetry = NO_TELEMETRY) -> None:
        self._upstream = upstream
        self._telemetry = telemetry
        self._local = local
        self._fallback = fallback_to_local
        self._catalog = catalog

    def models(self) -> list[ModelInfo]:
        """Every model a client may name: upstream ones first, then the local one."""
        upstream: list[ModelInfo] = []
        if self._upstream is not None and self._catalog is not None:
            upstream = [ModelInfo(id=m.id, provider=self._upstream.name, context_window=m.context_window)
                        for m in self._catalog.served()]
        elif self._upstream is not None:
            upstream = [ModelInfo(id=m, provider=self._upstream.name) for m in self._upstream.model_ids()]
        return upstream + [ModelInfo(id=m, provider=self._local.name) for m in self._local.model_ids()]

    async def complete(self, request: ChatRequest, *, route: Route = "auto") -> Completion:
        """Answer `request` whole, failing over to the local model when upstream is down."""
        upstream, request = self._choose(request, route)
        if upstream is None:
            return await self._local.complete(self._for_local(request))
        try:
            return await upstream.complete(request)
        except UpstreamUnavailable as exc:
            if not self._may_fall_back(request):
                raise
            log.warning("upstream unavailable (%s); answering with the local model", exc.message)
            note_fallback(self._telemetry, exc)
            return await self._local.complete(self._for_local(request))

    async def open_stream(self, request: ChatRequest, *, route: Route = "auto") -> ChunkStream:
        """Open an answer to `request` in pieces; fails over only while opening (before any piece)."""
        upstream, request = self._choose(request, route)
        if upstream is None:
            return await self._local.open_stream(self._for_local(request))
        try:
            return await upstream.open_stream(request)
        except UpstreamUnavailable as exc:
            if not self._may_fall_back(request):
                raise
            log.warning("upstream unavailable (%s); streaming from the local model", exc.message)
            note_fallback(self._telemetry, exc)
            return await self._local.open_stream(self._for_local(request))

    def _choose(self, request: ChatRequest, route: Route) -> tuple[LLMProvider | None, ChatRequest]:
        """The upstream to try (None: local only) and the request to send it."""
        if route == "local" or self._upstream is None or request.model in self._local.model_ids():
            return None, request
        if request.model not in self._upstream.model_ids():
            # Client-chosen names we don't serve (gpt-3.5-turbo in an editor config)
            # go to the default route instead of being rejected.
            request = request.with_model(None)
        return self._upstream, request

    def _may_fall_back(self, request: ChatRequest) -> bool:
        return self._fallback or request.model is None

    @staticmethod
    def _for_local(request: ChatRequest) -> ChatRequest:
        return request.with_model(None)
