"""LLM provider port."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from app.domain.models import ChatRequest, Completion
from app.domain.streams import ChunkStream


class LLMProvider(Protocol):
    """Something that turns a chat request into text."""

    @property
    def name(self) -> str:
        """Short provider name reported to clients: `groq` or `local`."""
        ...

    def model_ids(self) -> Sequence[str]:
        """Model ids this provider serves, the default first."""
        ...

    async def complete(self, request: ChatRequest) -> Completion:
        """Generate the whole answer."""
        ...

    async def open_stream(self, request: ChatRequest) -> ChunkStream:
        """Start generating; returns once the first chunk is in hand, raises the provider's error before.

        Closing the returned stream stops the work.
        """
        ...
