"""The OpenAI-compatible adapter configured as Groq, over real HTTP against the fake Groq on loopback."""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.adapters.openai_compatible import OpenAICompatibleProvider, groq_endpoint
from app.adapters.openai_compatible.transport import UpstreamHttp, open_upstream_http
from app.domain.errors import (
    ModelRetired,
    UpstreamAuthFailed,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.domain.models import ChatMessage, ChatRequest, Chunk
from app.domain.rate_limits import RateLimits
from tests.support.fake_groq import (
    FAKE_GROQ_KEY,
    Answer,
    BrokenStream,
    Drip,
    EndsEarly,
    Fail,
    FakeGroq,
    Huge,
    PauseMidStream,
    Raw,
    RawStream,
    Stall,
    StreamError,
    groq_error,
    rate_limited,
)
from tests.support.net import free_port

MODEL = "openai/gpt-oss-120b"
HELLO = ChatRequest(messages=(ChatMessage(role="user", content="hello"),), model=MODEL)
TOOL_CALLS = [{"id": "call_1", "type": "function",
               "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
              {"id": "call_2", "type": "function",
               "function": {"name": "get_time", "arguments": '{"zone": "CET"}'}}]


@pytest.fixture
async def http() -> AsyncIterator[UpstreamHttp]:
    async for client in open_upstream_http():
        yield client


class Recorder:
    """The rate-limit observer: what the adapter reported, per model."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, RateLimits]] = []

    def __call__(self, model: str, limits: RateLimits) -> None:
        self.seen.append((model, limits))


def groq(fake: FakeGroq, http: UpstreamHttp, *, key: str = FAKE_GROQ_KEY, total: float = 5.0,
         first_chunk: float = 5.0, idle: float = 5.0, observer: Recorder | None = None,
         base_url: str | None = None) -> OpenAICompatibleProvider:
    endpoint = groq_endpoint(api_key=key, base_url=base_url or fake.base_url, total_seconds=total,
                             first_chunk_seconds=first_chunk, idle_seconds=idle)
    return OpenAICompatibleProvider(http=http, endpoint=endpoint, on_rate_limits=observer)


async def read_all(provider: OpenAICompatibleProvider, request: ChatRequest = HELLO,
                   received: list[Chunk] | None = None) -> list[Chunk]:
    chunks = received if received is not None else []
    async with await provider.open_stream(request) as stream:
        async for chunk in stream:
            chunks.append(chunk)
    return chunks


# --- whole answers ------------------------------------------------------------------------------

async def test_success_maps_the_answer_reasoning_and_usage(fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    fake_groq.script(Answer("Paris is the capital.", reasoning="France's capital is Paris."))

    completion = await groq(fake_groq, http).complete(HELLO)

    assert completion.text == "Paris is the capital."
    assert completion.reasoning == "France's capital is Paris."
    assert completion.model == MODEL and completion.provider == "groq"
    assert completion.usage.prompt_tokens == 12
    assert fake_groq.requests[0]["messages"] == [{"role": "user", "content": "hello"}]


async def test_parameters_are_sent_in_groq_form(fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    request = ChatRequest(messages=HELLO.messages, model=MODEL, max_tokens=50, temperature=0.2,
                          stop=("a", "b", "c", "d", "e", "f"), seed=7, reasoning_effort="low",
                          reasoning_format="parsed", include_reasoning=True)

    await groq(fake_groq, http).complete(request)

    sent = fake_groq.requests[0]
    assert sent["max_completion_tokens"] == 50
    assert sent["stop"] == ["a", "b", "c", "d"]
    assert sent["temperature"] == 0.2 and sent["seed"] == 7
    assert (sent["reasoning_effort"], sent["reasoning_format"], sent["include_reasoning"]) == ("low", "parsed", True)


async def test_hidden_reasoning_is_not_invented(fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    completion = await groq(fake_groq, http).complete(
        ChatRequest(messages=HELLO.messages, model=MODEL, reasoning_format="hidden"))

    assert completion.reasoning is None
    assert completion.text == "Hello from fake Groq!"


async def test_tool_calls_come_back_with_their_finish_reason(fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    fake_groq.script(Answer(tool_calls=TOOL_CALLS, finish_reason="tool_calls"))

    completion = await groq(fake_groq, http).complete(HELLO)

    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls == tuple(TOOL_CALLS)


async def test_401_is_the_servers_credentials_problem(fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    with pytest.raises(UpstreamAuthFailed) as caught:
        await groq(fake_groq, http, key="gsk_wrongKEY123").complete(HELLO)

    assert "gsk_wrongKEY123" not in caught.value.message
    assert "GROQ_API_KEY" in caught.value.message


@pytest.mark.parametrize("model", ["llama-3.3-70b-versatile", "llama3-70b-8192", "no-such-model"])
async def test_retired_and_unknown_models_are_reported_as_retired(fake_groq: FakeGroq, http: UpstreamHttp,
                                                                  model: str) -> None:
    with pytest.raises(ModelRetired):
        await groq(fake_groq, http).complete(HELLO.with_model(model))


async def test_429_carries_retry_after_and_the_limits(fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    fake_groq.script(rate_limited(kind="tokens", retry_after="7", reset_tokens="7.66s"))
    observer = Recorder()

    with pytest.raises(UpstreamUnavailable) as caught:
        await groq(fake_groq, http, observer=observer).complete(HELLO)

    assert caught.value.retry_after == 7.0
    assert observer.seen == [(MODEL, RateLimits(remaining_requests=997, remaining_tokens=0,
                                                requests_reset_seconds=179.56, tokens_reset_seconds=7.66,
                                                retry_after_seconds=7.0))]


async def test_every_answer_reports_its_limits(fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    fake_groq.limits(MODEL).remaining_requests = 5
    observer = Recorder()

    await groq(fake_groq, http, observer=observer).complete(HELLO)
    await read_all(groq(fake_groq, http, observer=observer))

    assert [(m, limits.remaining_requests) for m, limits in observer.seen] == [(MODEL, 4), (MODEL, 3)]
    assert observer.seen[0][1].requests_reset_seconds == pytest.approx(179.56)


@pytest.mark.parametrize("header, expected", [("inf", 3600.0), ("1e308", 3600.0), ("nan", None), ("-5", None),
                                              ("soon", None), ("2.5", 2.5)])
async def test_retry_after_is_finite_and_capped(fake_groq: FakeGroq, http: UpstreamHttp, header: str,
                                                expected: float | None) -> None:
    fake_groq.script(Fail(429, groq_error("slow down", code="rate_limit_exceeded"), headers={"retry-after": header}))

    with pytest.raises(UpstreamUnavailable) as caught:
        await groq(fake_groq, http).complete(HELLO)

    assert caught.value.retry_after == expected


@pytest.mark.parametrize("failure", [
    Fail(500, groq_error("Internal Server Error", type_="internal_server_error")),
    Fail(503, "<html><body>503 Service Temporarily Unavailable</body></html>"),
    Fail(502),
    Fail(408, groq_error("Request timed out", type_="timeout")),
    Fail(498, groq_error("Flex tier capacity exceeded", code="capacity_exceeded")),
])
async def test_server_errors_mean_unavailable(fake_groq: FakeGroq, http: UpstreamHttp, failure: Fail) -> None:
    fake_groq.script(failure)

    with pytest.raises(UpstreamUnavailable) as caught:
        await groq(fake_groq, http).complete(HELLO)

    assert not isinstance(caught.value, (UpstreamTimeout, ModelRetired))


@pytest.mark.parametrize("status", [400, 413, 422])
async def test_client_errors_are_passed_on_with_groqs_message(fake_groq: FakeGroq, http: UpstreamHttp,
                                                              status: int) -> None:
    fake_groq.script(Fail(status, groq_error("`logprobs` is not supported with this model", param="logprobs",
                                             code="unsupported")))

    with pytest.raises(UpstreamRejected) as caught:
        await groq(fake_groq, http).complete(HELLO)

    assert (caught.value.status, caught.value.param, caught.value.code) == (status, "logprobs", "unsupported")
    assert "logprobs" in caught.value.message


async def test_groqs_own_validation_is_passed_on(fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        await groq(fake_groq, http).complete(HELLO.__class__(messages=HELLO.messages, model=MODEL,
                                                             reasoning_effort="none"))

    assert caught.value.param == "reasoning_effort"


@pytest.mark.parametrize("body", [
    "<html>maintenance</html>", "123", '{"choices": ["x"]}', '{"choices": "x"}', '{"choices": []}',
    '{"choices": [{"message": "x"}]}', '{"choices": [{"message": {"content": 5}}]}',
    '{"choices": [{"message": {"content": "hi", "tool_calls": "x"}}]}',
    '{"choices": [{"message": {"content": "hi"}, "finish_reason": 3}]}',
])
async def test_malformed_answers_are_unavailable(fake_groq: FakeGroq, http: UpstreamHttp, body: str) -> None:
    fake_groq.script(Raw(body))

    with pytest.raises(UpstreamUnavailable, match="not|no "):
        await groq(fake_groq, http).complete(HELLO)


async def test_an_error_code_of_the_wrong_type_is_dropped(fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    fake_groq.script(Fail(400, {"error": {"message": "bad", "code": ["a", "list"], "param": {"x": 1}}}))

    with pytest.raises(UpstreamRejected) as caught:
        await groq(fake_groq, http).complete(HELLO)

    assert (caught.value.message, caught.value.code, caught.value.param) == ("bad", None, None)


async def test_a_lone_surrogate_in_an_answer_becomes_a_replacement_character(
        fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    fake_groq.script(Raw('{"model": "m", "choices": [{"message": {"content": "a\\ud800b \\ud83d\\ude00"}}]}'))

    completion = await groq(fake_groq, http).complete(HELLO)

    assert completion.text == "a\ufffdb \U0001F600"
    completion.text.encode("utf-8")  # what the client gets must be encodable


async def test_an_answer_too_large_is_refused(fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    fake_groq.script(Huge(size=9 * 1024 * 1024))

    with pytest.raises(UpstreamUnavailable, match="over"):
        await groq(fake_groq, http).complete(HELLO)


async def test_connection_refused_is_unavailable(fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    provider = groq(fake_groq, http, base_url=f"http://127.0.0.1:{free_port()}/openai/v1")

    with pytest.raises(UpstreamUnavailable):
        await provider.complete(HELLO)


# --- deadlines and cancellation -----------------------------------------------------------------

async def test_a_stalled_answer_times_out(fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    fake_groq.script(Stall(3))

    with pytest.raises(UpstreamTimeout, match="within 0.5 s"):
        await groq(fake_groq, http, total=0.5).complete(HELLO)


@pytest.mark.parametrize("stream", [False, True])
async def test_an_answer_dripped_one_byte_every_2_s_is_cut_off_at_the_deadline(
        fake_groq: FakeGroq, http: UpstreamHttp, stream: bool) -> None:
    fake_groq.script(Drip(interval=2.0))  # one byte every 2 s: a whole answer would take many minutes
    provider = groq(fake_groq, http, total=3.0, first_chunk=3.0, idle=3.0)
    started = time.monotonic()

    with pytest.raises(UpstreamTimeout):
        if stream:
            await read_all(provider)
        else:
            await provider.complete(HELLO)

    assert time.monotonic() - started < 30  # the deadline, not the drip, ended it


async def test_a_stream_with_no_first_chunk_in_time_times_out(fake_groq: FakeGroq,
                                                               http: UpstreamHttp) -> None:
    fake_groq.script(Stall(3))

    with pytest.raises(UpstreamTimeout, match="no answer within 0.5 s"):
        await groq(fake_groq, http, first_chunk=0.5).open_stream(HELLO)


async def test_a_stream_that_goes_quiet_midway_times_out(fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    fake_groq.script(PauseMidStream(chunks=2, seconds=3))
    received: list[Chunk] = []

    with pytest.raises(UpstreamTimeout, match="nothing for 0.5 s"):
        await read_all(groq(fake_groq, http, idle=0.5), received=received)

    assert "".join(c.text for c in received) == "Hello from "


async def test_abandoned_requests_give_their_connections_back(fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    """120 requests abandoned while Groq stalls (more than the pool's 100 connections); the next is served."""
    fake_groq.script(*[Stall(8)] * 120)
    provider = groq(fake_groq, http, total=60)
    abandoned = [asyncio.create_task(provider.complete(HELLO)) for _ in range(120)]
    deadline = time.monotonic() + 20
    while len(fake_groq.requests) < 100 and time.monotonic() < deadline:  # the pool is full
        await asyncio.sleep(0.05)
    assert len(fake_groq.requests) >= 100
    for task in abandoned:
        task.cancel()
    await asyncio.gather(*abandoned, return_exceptions=True)
    fake_groq.reset()  # nothing scripted: answer at once

    async with asyncio.timeout(5):  # without the connections back, this would wait for the stalls
        completion = await provider.complete(HELLO)

    assert completion.text == "Hello from fake Groq!"


# --- streams ------------------------------------------------------------------------------------

async def test_stream_yields_text_then_usage_from_the_last_chunk(fake_groq: FakeGroq,
                                                                 http: UpstreamHttp) -> None:
    fake_groq.script(Answer("one two three", reasoning=""))

    chunks = await read_all(groq(fake_groq, http))

    assert "".join(c.text for c in chunks) == "one two three"
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert chunks[-1].finish_reason is None  # the `choices: []` usage chunk comes after the finish
    assert fake_groq.requests[0]["stream"] is True
    assert fake_groq.requests[0]["stream_options"] == {"include_usage": True}


async def test_a_finished_stream_leaves_nothing_for_the_garbage_collector_to_close(
        fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    """An async generator left suspended is closed by the collector, through a thread-safe wake-up and a task."""
    fake_groq.script(Answer("one two three"), Answer("four"))
    left: list[str] = []
    hooks = sys.get_asyncgen_hooks()
    assert hooks.finalizer is not None  # the event loop's: it schedules the generator's close

    def finalizer(generator: Any) -> None:
        left.append(generator.__qualname__)
        hooks.finalizer(generator)

    sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=finalizer)
    try:
        provider = groq(fake_groq, http)
        for _ in range(2):
            assert (await read_all(provider))[-1].usage is not None
        gc.collect()
    finally:
        sys.set_asyncgen_hooks(*hooks)

    assert left == []


async def test_stream_reasoning_comes_apart_from_the_text(fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    fake_groq.script(Answer("Paris.", reasoning="The capital of France is Paris."))

    chunks = await read_all(groq(fake_groq, http))

    assert "".join(c.reasoning for c in chunks) == "The capital of France is Paris. "
    assert "".join(c.text for c in chunks) == "Paris."


async def test_streamed_tool_calls_keep_their_indexes(fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    fake_groq.script(Answer(tool_calls=TOOL_CALLS, finish_reason="tool_calls", reasoning=""))

    chunks = await read_all(groq(fake_groq, http))

    pieces = [piece for c in chunks for piece in c.tool_calls or ()]
    assert [p["index"] for p in pieces] == [0, 0, 0, 1, 1, 1]
    assert pieces[0]["function"]["name"] == "get_weather" and pieces[0]["id"] == "call_1"
    assert "".join(p["function"]["arguments"] for p in pieces if p["index"] == 1) == '{"zone": "CET"}'
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]


@pytest.mark.parametrize("failure, reason", [
    (BrokenStream(chunks=2), "failed"),
    (StreamError(chunks=2, form="event"), "stopped the stream early: internal error mid-stream"),
    (StreamError(chunks=2, form="data"), "stopped the stream early: internal error mid-stream"),
    (StreamError(chunks=2, form="x_groq"), "stopped the stream early: internal error mid-stream"),
    (EndsEarly(chunks=2, missing="done"), "before \\[DONE\\]"),
    (EndsEarly(chunks=2, missing="finish"), "without a finish_reason"),
])
async def test_a_stream_that_stops_early_never_ends_like_a_whole_answer(
        fake_groq: FakeGroq, http: UpstreamHttp, failure: object, reason: str) -> None:
    fake_groq.script(failure)
    received: list[Chunk] = []

    with pytest.raises(UpstreamUnavailable, match=reason):
        await read_all(groq(fake_groq, http), HELLO, received)

    assert "".join(c.text for c in received) == "Hello from "
    assert [c.finish_reason for c in received if c.finish_reason] == []  # no finish that was not one


@pytest.mark.parametrize("events", [
    ["data: 123"], ['data: {"choices": ["x"]}'], ['data: {"choices": [{"delta": "x"}]}'],
    ['data: {"choices": [{"delta": {"content": 7}}]}'], ["data: not json"],
    ['event: error\ndata: {"error": {"message": "x", "code": ["list"]}}'],
])
async def test_malformed_stream_events_are_unavailable(fake_groq: FakeGroq, http: UpstreamHttp,
                                                       events: list[str]) -> None:
    fake_groq.script(RawStream(events))

    with pytest.raises(UpstreamUnavailable):
        await read_all(groq(fake_groq, http))


async def test_an_endless_stream_event_is_refused(fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    fake_groq.script(Huge(size=2 * 1024 * 1024))

    with pytest.raises(UpstreamUnavailable, match="over"):
        await read_all(groq(fake_groq, http))


async def test_the_model_list_is_read_without_inactive_models(fake_groq: FakeGroq, http: UpstreamHttp) -> None:
    models = await groq(fake_groq, http).list_models()

    assert [m.id for m in models][:3] == ["openai/gpt-oss-120b", "openai/gpt-oss-20b", "qwen/qwen3.8-27b"]
    assert models[0].context_window == 131072
