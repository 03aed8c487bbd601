"""An LLMProvider that reports every call: a span, tokens, errors by kind, and the time spent waiting for it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from time import perf_counter

from app.domain.errors import UpstreamError
from app.domain.models import ChatRequest, Chunk, Completion, Usage
from app.domain.observation import RequestFacts, current_facts, error_kind
from app.domain.streams import ChunkStream
from app.ports import LLMProvider
from app.ports.telemetry import GenerationSpan, Telemetry

PROMPT_LOG_CHARS = 4000  # LOG_PROMPTS keeps this much of a prompt for the log line


class InstrumentedProvider:
    """Wraps a provider; each call becomes a span, its usage and its waiting time go to the request's facts.

    `upstream=True` counts failures as upstream errors by kind. A stream's span
    stays open until the stream is closed, and time spent waiting for its chunks
    counts as time waiting for the model. Nothing here sees or keeps prompt text,
    except for the log line when the request's facts ask for it (LOG_PROMPTS).
    """

    def __init__(self, *, inner: LLMProvider, telemetry: Telemetry, upstream: bool = False) -> None:
        self._inner = inner
        self._telemetry = telemetry
        self._upstream = upstream

    @property
    def inner(self) -> LLMProvider:
        """The wrapped provider."""
        return self._inner

    @property
    def name(self) -> str:
        """The wrapped provider's name."""
        return self._inner.name

    def model_ids(self) -> Sequence[str]:
        """The wrapped provider's models."""
        return self._inner.model_ids()

    async def complete(self, request: ChatRequest) -> Completion:
        """The wrapped provider's answer, reported."""
        facts = current_facts()
        with self._start(request, facts, stream=False) as span:
            started = perf_counter()
            try:
                completion = await self._inner.complete(request)
            except BaseException as exc:
                self._failed(span, exc)
                raise
            finally:
                _waited(facts, perf_counter() - started)
            self._answered(span, facts, completion.provider, completion.model, completion.usage,
                           completion.finish_reason)
            return completion

    async def open_stream(self, request: ChatRequest) -> ChunkStream:
        """The wrapped provider's stream, reported until it is closed."""
        facts = current_facts()
        span = self._start(request, facts, stream=True)
        started = perf_counter()
        try:
            stream = await self._inner.open_stream(request)
        except BaseException as exc:
            self._failed(span, exc)
            span.end()
            raise
        finally:
            _waited(facts, perf_counter() - started)
        span.first_chunk()
        if facts is not None:  # known from the first chunk; the HTTP edge reports time to first token by it
            facts.provider, facts.model = stream.provider, stream.model
        return _ReportedStream(stream, span, self._follow(stream, span, facts))

    async def _follow(self, stream: ChunkStream, span: GenerationSpan,
                      facts: RequestFacts | None) -> AsyncGenerator[Chunk, None]:
        """The rest of `stream`, timed; usage is reported from its last chunk when it ends."""
        first_at = last_at = perf_counter()
        last = stream.first
        usage = last.usage
        try:
            await anext(stream)  # the first chunk, already handed out by the caller's ChunkStream
            while True:
                waiting = perf_counter()
                try:
                    chunk = await anext(stream)
                except StopAsyncIteration:
                    break
                finally:
                    last_at = perf_counter()
                    _waited(facts, last_at - waiting)
                last, usage = chunk, chunk.usage or usage
                yield chunk
            self._answered(span, facts, last.provider, last.model, usage, last.finish_reason)
            if not self._upstream and usage is not None and usage.completion_tokens > 1 and last_at > first_at:
                self._telemetry.local_tokens_per_second(
                    model=last.model, rate=(usage.completion_tokens - 1) / (last_at - first_at))
        except GeneratorExit:
            raise  # the reader stopped early (a client gone): not the provider's failure
        except BaseException as exc:
            self._failed(span, exc)
            raise
        finally:
            try:
                await stream.aclose()
            finally:
                span.end()

    def _start(self, request: ChatRequest, facts: RequestFacts | None, *, stream: bool) -> GenerationSpan:
        if facts is not None:
            facts.provider_calls += 1
            if facts.record_prompt and facts.prompt is None:
                facts.prompt = _prompt_text(request)[:PROMPT_LOG_CHARS]
        models = self._inner.model_ids()
        return self._telemetry.generation(
            provider=self._inner.name, model=request.model or (models[0] if models else None),
            operation="text_completion" if request.prompt is not None else "chat", stream=stream)

    def _failed(self, span: GenerationSpan, exc: BaseException) -> None:
        kind = error_kind(exc)
        span.fail(kind=kind)
        if self._upstream and isinstance(exc, UpstreamError):
            self._telemetry.upstream_error(kind=kind)

    @staticmethod
    def _answered(span: GenerationSpan, facts: RequestFacts | None, provider: str, model: str,
                  usage: Usage | None, finish_reason: str | None) -> None:
        tokens = usage or Usage(0, 0)
        span.usage(model=model, input_tokens=tokens.prompt_tokens, output_tokens=tokens.completion_tokens,
                   finish_reason=finish_reason)
        if facts is not None:
            facts.provider, facts.model = provider, model
            facts.input_tokens += tokens.prompt_tokens
            facts.output_tokens += tokens.completion_tokens


class _ReportedStream(ChunkStream):
    """The reported stream; closing it closes the provider's stream and the span even if it was never read."""

    def __init__(self, inner: ChunkStream, span: GenerationSpan, rest: AsyncGenerator[Chunk, None]) -> None:
        super().__init__(inner.first, rest)
        self._inner = inner
        self._span = span

    async def aclose(self) -> None:
        """Close the reading, the provider's stream, and the span (an unstarted generator runs no `finally`)."""
        try:
            await super().aclose()
        finally:
            try:
                await self._inner.aclose()
            finally:
                self._span.end()


def _waited(facts: RequestFacts | None, seconds: float) -> None:
    if facts is not None:
        facts.provider_seconds += seconds


def _prompt_text(request: ChatRequest) -> str:
    if request.prompt is not None:
        return request.prompt
    return "\n".join(f"{m.role}: {m.content}" for m in request.messages)
