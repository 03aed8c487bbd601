"""InstrumentedProvider: spans, upstream errors by kind, and the request's facts, for answers and streams."""

from __future__ import annotations

import asyncio

import pytest

from app.domain.errors import ModelRetired, Overloaded, UpstreamTimeout, UpstreamUnavailable
from app.domain.instrumented import InstrumentedProvider
from app.domain.models import ChatMessage, ChatRequest
from app.domain.observation import RequestFacts, bind_facts, error_kind, note_fallback, release_facts
from tests.unit.fakes import FakeLLMProvider, ScriptedLLMProvider
from tests.unit.fakes_telemetry import FakeTelemetry

SECRET_PROMPT = "my very private question"
HELLO = ChatRequest(messages=(ChatMessage(role="user", content=SECRET_PROMPT),))


class SlowProvider(FakeLLMProvider):
    """Answers after a pause, so waiting time can be seen."""

    async def complete(self, request: ChatRequest):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.05)
        return await super().complete(request)


def in_request(record_prompt: bool = False) -> tuple[RequestFacts, object]:
    facts = RequestFacts(request_id="req-1", record_prompt=record_prompt)
    return facts, bind_facts(facts)


async def test_an_answer_fills_the_request_facts_and_closes_one_span() -> None:
    telemetry = FakeTelemetry()
    provider = InstrumentedProvider(inner=SlowProvider(name="groq", models=["m1"], answer="one two three"),
                                    telemetry=telemetry, upstream=True)
    facts, token = in_request()
    try:
        completion = await provider.complete(HELLO)
    finally:
        release_facts(token)  # type: ignore[arg-type]

    assert completion.text == "one two three"
    assert (facts.provider, facts.model, facts.input_tokens, facts.output_tokens) == ("groq", "m1", 3, 3)
    assert facts.provider_calls == 1 and facts.provider_seconds >= 0.04
    assert facts.prompt is None  # LOG_PROMPTS off: no prompt text kept anywhere
    [span] = telemetry.spans
    assert (span.provider, span.model, span.operation, span.ended) == ("groq", "m1", "chat", True)
    assert span.used == ("m1", 3, 3, "stop")


async def test_the_prompt_is_kept_only_when_the_request_asks_for_it() -> None:
    provider = InstrumentedProvider(inner=FakeLLMProvider(name="local", models=["local/x"]),
                                    telemetry=FakeTelemetry())
    facts, token = in_request(record_prompt=True)
    try:
        await provider.complete(HELLO)
    finally:
        release_facts(token)  # type: ignore[arg-type]

    assert facts.prompt == f"user: {SECRET_PROMPT}"


@pytest.mark.parametrize(("error", "kind"), [
    (UpstreamTimeout("slow"), "timeout"),
    (ModelRetired("gone"), "model_retired"),
    (UpstreamUnavailable("down"), "unavailable"),
])
async def test_an_upstream_failure_is_counted_by_kind(error: Exception, kind: str) -> None:
    telemetry = FakeTelemetry()
    provider = InstrumentedProvider(inner=FakeLLMProvider(name="groq", models=["m1"], error=error),
                                    telemetry=telemetry, upstream=True)

    with pytest.raises(type(error)):
        await provider.complete(HELLO)

    assert telemetry.events[f"upstream_error:{kind}"] == 1
    assert telemetry.spans[0].error == kind and telemetry.spans[0].ended


async def test_a_local_failure_marks_its_span_but_is_no_upstream_error() -> None:
    telemetry = FakeTelemetry()
    provider = InstrumentedProvider(
        inner=FakeLLMProvider(name="local", models=["local/x"], error=Overloaded("busy", retry_after=1)),
        telemetry=telemetry)

    with pytest.raises(Overloaded):
        await provider.complete(HELLO)

    assert telemetry.spans[0].error == "overloaded"
    assert not [e for e in telemetry.events if e.startswith("upstream_error")]


async def test_a_stream_reports_first_chunk_usage_and_local_speed_when_read_to_the_end() -> None:
    telemetry = FakeTelemetry()
    inner = ScriptedLLMProvider(name="local", models=["local/x"], answer="a b c d", chunk_delay=0.01)
    provider = InstrumentedProvider(inner=inner, telemetry=telemetry)
    facts, token = in_request()
    try:
        stream = await provider.open_stream(HELLO)
        async with stream:
            text = "".join([chunk.text async for chunk in stream])
    finally:
        release_facts(token)  # type: ignore[arg-type]

    [span] = telemetry.spans
    assert text == "a b c d"
    assert span.stream and span.first_chunks == 1 and span.ended
    assert span.used == ("local/x", 3, 2, "stop")
    assert (facts.input_tokens, facts.output_tokens) == (3, 2)
    assert facts.provider_seconds >= 0.03  # the waits for chunks count as time waiting for the model
    assert telemetry.gauges["local_tokens_per_second"] > 0
    assert inner.streams_closed == 1


async def test_closing_a_stream_after_its_first_chunk_closes_the_provider_stream_and_the_span() -> None:
    telemetry = FakeTelemetry()
    inner = ScriptedLLMProvider(name="groq", models=["m1"], answer="a b c")
    provider = InstrumentedProvider(inner=inner, telemetry=telemetry, upstream=True)

    stream = await provider.open_stream(HELLO)
    await anext(stream)
    await stream.aclose()

    assert inner.streams_closed == 1
    assert telemetry.spans[0].ended and telemetry.spans[0].error is None


async def test_a_stream_that_breaks_midway_is_an_upstream_error() -> None:
    telemetry = FakeTelemetry()
    inner = ScriptedLLMProvider(name="groq", models=["m1"], answer="a b c",
                                script=[(1, UpstreamUnavailable("reset"))])
    provider = InstrumentedProvider(inner=inner, telemetry=telemetry, upstream=True)

    stream = await provider.open_stream(HELLO)
    with pytest.raises(UpstreamUnavailable):
        async with stream:
            async for _ in stream:
                pass

    assert telemetry.events["upstream_error:unavailable"] == 1
    assert telemetry.spans[0].error == "unavailable" and telemetry.spans[0].ended


async def test_outside_a_request_nothing_is_recorded_but_calls_still_work() -> None:
    provider = InstrumentedProvider(inner=FakeLLMProvider(name="groq", models=["m1"]), telemetry=FakeTelemetry())

    assert (await provider.complete(HELLO)).provider == "groq"


def test_error_kinds_prefer_the_error_s_own_word() -> None:
    error = UpstreamUnavailable("Groq is unavailable: HTTP 429")
    error.kind = "rate_limited"  # type: ignore[attr-defined]

    assert error_kind(error) == "rate_limited"
    assert error_kind(UpstreamTimeout("slow")) == "timeout"
    assert error_kind(asyncio.CancelledError()) == "cancelled"
    assert error_kind(ValueError("bug")) == "internal"


def test_a_fallback_is_counted_and_its_reason_lands_in_the_request_facts() -> None:
    telemetry = FakeTelemetry()
    facts, token = in_request()
    try:
        note_fallback(telemetry, UpstreamTimeout("slow"))
    finally:
        release_facts(token)  # type: ignore[arg-type]

    assert telemetry.events["fallback:timeout"] == 1
    assert facts.fallback_reason == "timeout"
