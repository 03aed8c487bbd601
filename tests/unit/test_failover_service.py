"""ResilientUpstream (retries, backoff, circuit breaker) and ChatService failover, with fakes."""

from __future__ import annotations

import asyncio

import pytest

from app.domain.chat import ChatService
from app.domain.circuit_breaker import CircuitBreaker
from app.domain.errors import (
    ModelRetired,
    RateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.domain.failover import CircuitOpen, ResilientUpstream, RetryPolicy
from app.domain.models import ChatMessage, ChatRequest
from tests.unit.fakes import FakeClock, FakeLLMProvider, FakeSleep, ScriptedLLMProvider

HELLO = ChatRequest(messages=(ChatMessage(role="user", content="hello"),))
GROQ_MODEL = "llama-3.3-70b-versatile"


class World:
    def __init__(self, *script: object, threshold: int = 3, cooldown: float = 30, max_retries: int = 2,
                 max_retry_after: float = 5.0, fallback: bool = True) -> None:
        self.clock = FakeClock()
        self.sleep = FakeSleep()
        self.groq = ScriptedLLMProvider(name="groq", models=[GROQ_MODEL], script=list(script),
                                        answer="from groq")
        self.local = FakeLLMProvider(name="local", models=["local/SmolLM2-135M-Instruct"],
                                     answer="from local")
        self.breaker = CircuitBreaker(clock=self.clock, failure_threshold=threshold,
                                      cooldown_seconds=cooldown)
        policy = RetryPolicy(max_retries=max_retries, base_seconds=0.5,
                             max_retry_after_seconds=max_retry_after)
        self.upstream = ResilientUpstream(upstream=self.groq, breaker=self.breaker, policy=policy,
                                          sleep=self.sleep, jitter=lambda: 1.0)
        self.service = ChatService(upstream=self.upstream, local=self.local, fallback_to_local=fallback)


async def collect(service: ChatService, request: ChatRequest = HELLO) -> tuple[str, set[str]]:
    text, sides = "", set()
    async with await service.open_stream(request) as stream:
        async for chunk in stream:
            text += chunk.text
            sides.add(chunk.provider)
    return text, sides


def down(retry_after: float | None = None) -> UpstreamUnavailable:
    return UpstreamUnavailable("Groq is unavailable: HTTP 503", retry_after=retry_after)


async def test_a_passing_failure_is_retried_with_growing_delays() -> None:
    world = World(down(), down())

    completion = await world.service.complete(HELLO)

    assert completion.provider == "groq"
    assert world.groq.calls == 3
    assert world.sleep.delays == [0.5, 1.0]
    assert world.breaker.state == "closed"


def test_jitter_keeps_the_delay_between_half_and_all_of_the_backoff() -> None:
    policy = RetryPolicy(max_retries=3, base_seconds=1.0, max_retry_after_seconds=10)

    assert policy.delay(2, None, 0.0) == 2.0
    assert policy.delay(2, None, 1.0) == 4.0
    assert policy.delay(3, None, 1.0) is None


async def test_retries_are_bounded_then_the_local_model_answers() -> None:
    world = World(down(), down(), down(), down())

    completion = await world.service.complete(HELLO)

    assert completion.provider == "local"
    assert world.groq.calls == 3
    assert len(world.sleep.delays) == 2


async def test_a_short_retry_after_is_honoured() -> None:
    world = World(down(retry_after=3.0))

    completion = await world.service.complete(HELLO)

    assert completion.provider == "groq"
    assert world.sleep.delays == [3.0]


async def test_a_retry_after_beyond_the_cap_fails_over_at_once() -> None:
    world = World(down(retry_after=60.0), max_retry_after=5.0)

    completion = await world.service.complete(HELLO)

    assert completion.provider == "local"
    assert world.groq.calls == 1
    assert world.sleep.delays == []


@pytest.mark.parametrize("error", [UpstreamTimeout("Groq did not answer in time"), ModelRetired("gone")])
async def test_timeouts_and_retired_models_are_not_retried(error: UpstreamUnavailable) -> None:
    world = World(error)

    completion = await world.service.complete(HELLO)

    assert completion.provider == "local"
    assert world.groq.calls == 1


async def test_client_errors_pass_through_without_retry_or_fallback() -> None:
    world = World(UpstreamRejected("`logprobs` is not supported", param="logprobs"))

    with pytest.raises(UpstreamRejected):
        await world.service.complete(HELLO)

    assert world.groq.calls == 1
    assert world.local.requests == []


async def test_the_circuit_opens_and_then_requests_skip_groq() -> None:
    world = World(*[down()] * 6, threshold=2, max_retries=0)
    await world.service.complete(HELLO)
    await world.service.complete(HELLO)
    calls = world.groq.calls

    completion = await world.service.complete(HELLO)
    text, sides = await collect(world.service)

    assert world.breaker.state == "open"
    assert completion.provider == "local" and sides == {"local"}
    assert world.groq.calls == calls
    assert world.sleep.delays == []


async def test_after_the_cooldown_a_successful_probe_closes_the_circuit() -> None:
    world = World(down(), threshold=1, cooldown=30, max_retries=0)
    await world.service.complete(HELLO)
    assert world.breaker.state == "open"

    world.clock.advance(seconds=30)
    completion = await world.service.complete(HELLO)

    assert completion.provider == "groq"
    assert world.breaker.state == "closed"


async def test_a_failed_probe_is_not_retried_and_reopens_the_circuit() -> None:
    world = World(*[down()] * 4, threshold=1, cooldown=30)
    await world.service.complete(HELLO)
    calls = world.groq.calls
    world.clock.advance(seconds=31)

    completion = await world.service.complete(HELLO)

    assert completion.provider == "local"
    assert world.groq.calls == calls + 1
    assert world.breaker.state == "open"


async def test_open_circuit_with_a_named_groq_model_and_no_fallback_is_unavailable() -> None:
    world = World(down(), threshold=1, max_retries=0, fallback=False)
    await world.service.complete(HELLO)
    world.clock.advance(seconds=10)

    with pytest.raises(CircuitOpen) as caught:
        await world.service.complete(HELLO.with_model(GROQ_MODEL))

    assert caught.value.retry_after == 20


async def test_a_stream_is_retried_before_its_first_chunk() -> None:
    world = World(down())

    text, sides = await collect(world.service)

    assert (text, sides) == ("from groq", {"groq"})
    assert world.groq.calls == 2
    assert world.groq.streams_closed == 2


async def test_a_stream_that_breaks_after_its_first_chunk_is_not_retried() -> None:
    world = World((1, down()), threshold=1)

    with pytest.raises(UpstreamUnavailable):
        await collect(world.service)

    assert world.groq.calls == 1
    assert world.local.requests == []
    assert world.breaker.state == "open"


async def test_closing_a_stream_closes_the_upstream_stream() -> None:
    world = World()
    stream = await world.service.open_stream(HELLO)

    await anext(stream)
    await stream.aclose()

    assert world.groq.streams_closed == 1
    assert world.groq.chunks_sent == 1


async def test_a_cancelled_probe_lets_the_next_request_probe() -> None:
    world = World(down(), asyncio.CancelledError(), threshold=1, cooldown=5, max_retries=0)
    await world.service.complete(HELLO)
    world.clock.advance(seconds=5)

    with pytest.raises(asyncio.CancelledError):
        await world.upstream.complete(HELLO)  # the client went away during the probe
    completion = await world.service.complete(HELLO)

    assert completion.provider == "groq"
    assert world.breaker.state == "closed"


async def test_a_probe_stream_closes_the_circuit_at_its_first_chunk() -> None:
    world = World(down(), threshold=1, cooldown=5, max_retries=0)
    await world.service.complete(HELLO)
    world.clock.advance(seconds=5)
    stream = await world.upstream.open_stream(HELLO)

    await anext(stream)
    await stream.aclose()

    assert world.breaker.state == "closed"


class SlowFailures(ScriptedLLMProvider):
    """Each call takes `seconds` of real time, then fails as the script says."""

    seconds: float = 0.3
    started: int = 0

    async def complete(self, request: ChatRequest):  # type: ignore[no-untyped-def]
        self.started += 1
        await asyncio.sleep(self.seconds)
        return await super().complete(request)


async def test_the_request_deadline_bounds_every_attempt_together() -> None:
    groq = SlowFailures(name="groq", models=[GROQ_MODEL], script=[down(), down(), down()])
    breaker = CircuitBreaker(clock=FakeClock(), failure_threshold=5)
    policy = RetryPolicy(max_retries=2, base_seconds=0.0, deadline_seconds=0.5)
    upstream = ResilientUpstream(upstream=groq, breaker=breaker, policy=policy, sleep=FakeSleep())

    with pytest.raises(UpstreamTimeout, match="request deadline"):
        await upstream.complete(HELLO)

    assert (groq.started, groq.calls) == (2, 1)  # the second attempt was cut at 0.5 s; no third


async def test_a_retry_wait_that_would_pass_the_deadline_is_not_taken() -> None:
    world_sleep = FakeSleep()
    groq = ScriptedLLMProvider(name="groq", models=[GROQ_MODEL], script=[down(retry_after=4.0)])
    policy = RetryPolicy(max_retries=2, max_retry_after_seconds=5, deadline_seconds=3.0)
    upstream = ResilientUpstream(upstream=groq, breaker=CircuitBreaker(clock=FakeClock()), policy=policy,
                                 sleep=world_sleep)

    with pytest.raises(UpstreamUnavailable):
        await upstream.complete(HELLO)

    assert world_sleep.delays == []
    assert groq.calls == 1


async def test_a_rate_limited_upstream_is_no_verdict_on_its_health() -> None:
    world = World(RateLimited("used up", retry_after=60), threshold=1)

    completion = await world.service.complete(HELLO)

    assert completion.provider == "local"
    assert world.breaker.state == "closed"
