"""Hand-written fakes of the ports, for unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from app.domain.errors import DomainError
from app.domain.models import ChatRequest, Chunk, Completion, Usage
from tests.unit.fakes_keys import FakeClock, FakeKeyStore

__all__ = ["FakeClock", "FakeKeyStore", "FakeLLMProvider"]


@dataclass
class FakeLLMProvider:
    """Plays a scripted answer (or raises a scripted error) and records requests."""

    name: str
    models: Sequence[str]
    answer: str = "scripted answer"
    error: DomainError | None = None
    error_after_chunks: int | None = None
    requests: list[ChatRequest] = field(default_factory=list)

    def model_ids(self) -> Sequence[str]:
        return self.models

    def _model(self, request: ChatRequest) -> str:
        return request.model or self.models[0]

    async def complete(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return Completion(text=self.answer, model=self._model(request), provider=self.name,
                          usage=Usage(3, len(self.answer.split())))

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        self.requests.append(request)
        if self.error is not None and not self.error_after_chunks:
            raise self.error
        for i, word in enumerate(self.answer.split(" ")):
            if self.error is not None and i == self.error_after_chunks:
                raise self.error
            yield Chunk(model=self._model(request), provider=self.name, text=(" " if i else "") + word)
        yield Chunk(model=self._model(request), provider=self.name, finish_reason="stop",
                    usage=Usage(3, len(self.answer.split())))
