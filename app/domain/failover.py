"""The upstream behind retries and a circuit breaker, so failover stays fast and bounded."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TypeVar
from dataclasses import dataclass

from app.domain.circuit_breaker import CircuitBreaker
from app.domain.errors import DomainError, ModelRetired, RateLimited, UpstreamTimeout, UpstreamUnavailable
from app.domain.models import ChatRequest, Chunk, Completion
from app.domain.observation import NO_TELEMETRY
from app.domain.streams import ChunkStream
from app.ports import LLMProvider
from app.ports.telemetry import Telemetry

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry an unavailable upstream.

    Delays grow as `base_seconds * 2**attempt`, with jitter (half to all of it).
    A `retry-after` up to `max_retry_after_seconds` is honoured; a longer one
    means failing over at once.
    """

    max_retries: int = 2
    base_seconds: float = 0.5
    max_retry_after_seconds: float = 5.0
    deadline_seconds: float | None = None  # all attempts of one request, waits included

    def delay(self, attempt: int, retry_after: float | None, jitter: float) -> float | None:
        """Seconds to wait before retry number `attempt` (0-based), or None: don't retry."""
        if attempt >= self.max_retries:
            return None
        if retry_after is not None and retry_after > self.max_retry_after_seconds:
            return None
        backoff = self.base_seconds * (2 ** attempt) * (0.5 + jitter / 2)
        return min(max(backoff, retry_after or 0.0), self.max_retry_after_seconds)


class CircuitOpen(UpstreamUnavailable):
    """The circuit breaker refuses upstream calls for now."""

    kind = "circuit_open"


class ResilientUpstream:
    """An LLMProvider that retries its upstream and skips it while the circuit is open.

    Retried: connection errors, 5xx and 429 (`UpstreamUnavailable`). Not retried:
    timeouts (the time budget is spent), retired models (the router already moved
    through its model list), client errors. Each request that still fails counts
    once towards the breaker; the half-open probe is tried once, without retries.
    All attempts of one request, and the waits between them, end by the policy's
    deadline (then `UpstreamTimeout`, and the caller falls back).
    """

    def __init__(self, *, upstream: LLMProvider, breaker: CircuitBreaker, policy: RetryPolicy,
                 sleep: Sleep = asyncio.sleep, jitter: Callable[[], float] = random.random,
                 telemetry: Telemetry = NO_TELEMETRY) -> None:
        self._upstream = upstream
        self._telemetry = telemetry
        self._breaker = breaker
        self._policy = policy
        self._sleep = sleep
        self._jitter = jitter

    @property
    def name(self) -> str:
        """The wrapped provider's name."""
        return self._upstream.name

    def model_ids(self) -> Sequence[str]:
        """The wrapped provider's models."""
        return self._upstream.model_ids()

    async def complete(self, request: ChatRequest) -> Completion:
        """The upstream's answer, retried while that is worth it."""
        return await self._call(lambda: self._upstream.complete(request))

    async def open_stream(self, request: ChatRequest) -> ChunkStream:
        """The upstream's stream, retried while opening; a failure after it opened counts against the breaker."""
        stream = await self._call(lambda: self._upstream.open_stream(request))
        return stream.wrapped(self._watch)

    async def _call(self, attempt_once: Callable[[], Awaitable[T]]) -> T:
        """`attempt_once()` retried while worth it, within the deadline; the breaker hears the outcome."""
        probe = self._admit()
        deadline = self._policy.deadline_seconds
        ends_at = None if deadline is None else asyncio.get_running_loop().time() + deadline
        try:
            try:
                async with asyncio.timeout_at(ends_at):
                    result = await self._attempts(attempt_once, probe, ends_at)
            except TimeoutError:
                raise UpstreamTimeout(f"The upstream gave no answer within the request deadline "
                                      f"({deadline:g} s).") from None
        except BaseException as exc:
            self._settle(exc)
            raise
        self._breaker.record_success()
        return result

    async def _attempts(self, attempt_once: Callable[[], Awaitable[T]], probe: bool,
                        ends_at: float | None) -> T:
        attempt = 0
        while True:
            try:
                return await attempt_once()
            except UpstreamUnavailable as exc:
                if not await self._wait_before_retry(exc, attempt, probe, ends_at):
                    raise
                attempt += 1

    async def _watch(self, rest: AsyncGenerator[Chunk, None]) -> AsyncGenerator[Chunk, None]:
        """The rest of an opened stream; a break mid-stream is a failure of the upstream."""
        try:
            async for chunk in rest:
                yield chunk
        except UpstreamUnavailable:
            self._breaker.record_failure()
            raise

    def _admit(self) -> bool:
        """True for the half-open probe; raises CircuitOpen while the circuit refuses calls."""
        admission = self._breaker.admit()
        if admission is None:
            raise CircuitOpen("The upstream failed repeatedly and is skipped for now (circuit open).",
                              retry_after=self._breaker.retry_after() or None)
        return admission == "probe"

    async def _wait_before_retry(self, exc: UpstreamUnavailable, attempt: int, probe: bool,
                                 ends_at: float | None) -> bool:
        """Sleep and return True when `exc` deserves another attempt before the deadline."""
        if probe or isinstance(exc, (ModelRetired, UpstreamTimeout)):
            return False
        delay = self._policy.delay(attempt, exc.retry_after, self._jitter())
        if delay is None or (ends_at is not None and asyncio.get_running_loop().time() + delay >= ends_at):
            return False
        log.info("upstream unavailable (%s); retry %d in %.2f s", exc.message, attempt + 1, delay)
        self._telemetry.retry()
        await self._sleep(delay)
        return True

    def _settle(self, exc: BaseException) -> None:
        """Tell the breaker how a call that raised `exc` ended."""
        if isinstance(exc, RateLimited):
            self._breaker.release()  # the upstream was not asked: no verdict on its health
        elif isinstance(exc, ModelRetired):
            self._breaker.record_success()  # Groq answered; the model list is a configuration matter
        elif isinstance(exc, UpstreamUnavailable):
            self._breaker.record_failure()
        elif isinstance(exc, DomainError):
            self._breaker.record_success()  # Groq answered (a 4xx, say): it is up
        else:
            self._breaker.release()  # cancelled, or a bug of ours: no verdict on the upstream
