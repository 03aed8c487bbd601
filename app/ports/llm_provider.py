"""LLM provider port."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Protocol

from app.domain.models import ChatRequest, Chunk, Completion


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

    def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        """Generate the answer piece by piece; closing the iterator stops the work."""
        ...
