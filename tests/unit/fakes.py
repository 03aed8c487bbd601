"""Hand-written fakes of the ports, for unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

from app.domain.errors import DomainError
from app.domain.models import ChatRequest, Chunk, Completion, Usage
from app.domain.streams import ChunkStream, open_chunks
from tests.unit.fakes_keys import FakeClock, FakeKeyStore

__all__ = ["FakeClock", "FakeKeyStore", "FakeLLMProvider"]


class NothingToLoad:
    """The ModelLoader side of a fake local provider: always loaded, records closing."""

    is_loaded = True
    closed = False

    async def load(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeLLMProvider(NothingToLoad):
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

    async def open_stream(self, request: ChatRequest) -> ChunkStream:
        return await open_chunks(self._chunks(request))

    async def _chunks(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        self.requests.append(request)
        if self.error is not None and not self.error_after_chunks:
            raise self.error
        for i, word in enumerate(self.answer.split(" ")):
            if self.error is not None and i == self.error_after_chunks:
                raise self.error
            yield Chunk(model=self._model(request), provider=self.name, text=(" " if i else "") + word)
        yield Chunk(model=self._model(request), provider=self.name, finish_reason="stop",
                    usage=Usage(3, len(self.answer.split())))


class FakeSleep:
    """An injectable sleep that records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@dataclass
class ScriptedLLMProvider(NothingToLoad):
    """Fails or answers call by call, in script order (then answers); tracks closed streams.

    A script entry is a DomainError (raised before the first chunk), a tuple
    `(chunks, error)` (raised after that many chunks) or None (a normal answer).
    """

    name: str
    models: Sequence[str]
    script: list[object] = field(default_factory=list)
    answer: str = "scripted answer"
    calls: int = 0
    streams_closed: int = 0
    chunks_sent: int = 0
    chunk_delay: float = 0.0  # > 0: a slow stream, which yields to the event loop between chunks

    def model_ids(self) -> Sequence[str]:
        return self.models

    def _next(self) -> object:
        self.calls += 1
        return self.script.pop(0) if self.script else None

    async def complete(self, request: ChatRequest) -> Completion:
        outcome = self._next()
        if isinstance(outcome, BaseException):
            raise outcome
        return Completion(text=self.answer, model=request.model or self.models[0], provider=self.name)

    async def open_stream(self, request: ChatRequest) -> ChunkStream:
        return await open_chunks(self._chunks(request))

    async def _chunks(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        outcome = self._next()
        model = request.model or self.models[0]
        try:
            if isinstance(outcome, BaseException):
                raise outcome
            fail_after, error = outcome if isinstance(outcome, tuple) else (None, None)
            for i, word in enumerate(self.answer.split(" ")):
                if i == fail_after:
                    raise error
                if self.chunk_delay:
                    await asyncio.sleep(self.chunk_delay)
                self.chunks_sent += 1
                yield Chunk(model=model, provider=self.name, text=(" " if i else "") + word)
            yield Chunk(model=model, provider=self.name, finish_reason="stop", usage=Usage(3, 2))
        finally:
            self.streams_closed += 1
