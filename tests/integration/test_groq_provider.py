"""GroqProvider over real HTTP against the fake Groq server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.adapters.groq import GroqProvider
from app.domain.errors import ModelRetired, UpstreamAuthFailed, UpstreamRejected, UpstreamUnavailable
from app.domain.models import ChatMessage, ChatRequest
from tests.support.fake_groq import (
    FAKE_GROQ_KEY,
    Answer,
    BrokenStream,
    Fail,
    FakeGroq,
    Stall,
    StreamError,
    groq_error,
)

HELLO = ChatRequest(messages=(ChatMessage(role="user", content="hello"),))
MODELS = ["llama-3.3-70b-versatile", "openai/gpt-oss-120b"]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(2.0)) as client:
        yield client


def groq(fake: FakeGroq, http: httpx.AsyncClient, key: str = FAKE_GROQ_KEY) -> GroqProvider:
    return GroqProvider(client=http, api_key=key, models=MODELS, base_url=fake.base_url)


async def test_success_maps_the_answer_and_usage(fake_groq: FakeGroq, http: httpx.AsyncClient) -> None:
    fake_groq.script(Answer("Paris is the capital."))

    completion = await groq(fake_groq, http).complete(HELLO)

    assert completion.text == "Paris is the capital."
    assert completion.model == "llama-3.3-70b-versatile"
    assert completion.provider == "groq"
    assert completion.usage.prompt_tokens == 12
    assert fake_groq.requests[0]["messages"] == [{"role": "user", "content": "hello"}]


async def test_parameters_are_sent_in_groq_form(fake_groq: FakeGroq, http: httpx.AsyncClient) -> None:
    request = ChatRequest(messages=HELLO.messages, max_tokens=50, temperature=0.2,
                          stop=("a", "b", "c", "d", "e", "f"), seed=7)

    await groq(fake_groq, http).complete(request)

    sent = fake_groq.requests[0]
    assert sent["max_completion_tokens"] == 50
    assert sent["stop"] == ["a", "b", "c", "d"]
    assert sent["temperature"] == 0.2 and sent["seed"] == 7


async def test_401_is_the_servers_credentials_problem(fake_groq: FakeGroq, http: httpx.AsyncClient) -> None:
    with pytest.raises(UpstreamAuthFailed) as caught:
        await groq(fake_groq, http, key="gsk_wrongKEY123").complete(HELLO)

    assert "gsk_wrongKEY123" not in caught.value.message


async def test_model_not_found_moves_to_the_next_model(fake_groq: FakeGroq, http: httpx.AsyncClient) -> None:
    fake_groq.retired_models.add("llama-3.3-70b-versatile")

    completion = await groq(fake_groq, http).complete(HELLO)

    assert completion.model == "openai/gpt-oss-120b"
    assert [r["model"] for r in fake_groq.requests] == MODELS


async def test_every_model_retired_is_reported(fake_groq: FakeGroq, http: httpx.AsyncClient) -> None:
    fake_groq.retired_models.update(MODELS)

    with pytest.raises(ModelRetired):
        await groq(fake_groq, http).complete(HELLO)


async def test_decommissioned_model_counts_as_retired(fake_groq: FakeGroq, http: httpx.AsyncClient) -> None:
    fake_groq.script(Fail(400, groq_error("The model has been decommissioned", code="model_decommissioned")))

    completion = await groq(fake_groq, http).complete(HELLO)

    assert completion.model == "openai/gpt-oss-120b"


async def test_429_carries_retry_after(fake_groq: FakeGroq, http: httpx.AsyncClient) -> None:
    fake_groq.script(Fail(429, groq_error("Rate limit reached", code="rate_limit_exceeded", type_="tokens"),
                          headers={"retry-after": "7"}))

    with pytest.raises(UpstreamUnavailable) as caught:
        await groq(fake_groq, http).complete(HELLO)

    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize("failure", [
    Fail(500, groq_error("Internal Server Error", type_="internal_server_error")),
    Fail(503, "<html><body>503 Service Temporarily Unavailable</body></html>"),
    Fail(502),
])
async def test_server_errors_mean_unavailable(fake_groq: FakeGroq, http: httpx.AsyncClient, failure: Fail) -> None:
    fake_groq.script(failure)

    with pytest.raises(UpstreamUnavailable):
        await groq(fake_groq, http).complete(HELLO)


async def test_non_json_success_body_is_unavailable(fake_groq: FakeGroq, http: httpx.AsyncClient) -> None:
    fake_groq.script(Fail(200, "<html>maintenance</html>"))

    with pytest.raises(UpstreamUnavailable, match="malformed"):
        await groq(fake_groq, http).complete(HELLO)


async def test_400_is_passed_on_with_groqs_message(fake_groq: FakeGroq, http: httpx.AsyncClient) -> None:
    fake_groq.script(Fail(400, groq_error("`logprobs` is not supported with this model", param="logprobs")))

    with pytest.raises(UpstreamRejected) as caught:
        await groq(fake_groq, http).complete(HELLO)

    assert caught.value.param == "logprobs"
    assert "logprobs" in caught.value.message


async def test_connection_refused_is_unavailable(http: httpx.AsyncClient) -> None:
    from tests.support.net import free_port

    provider = GroqProvider(client=http, api_key=FAKE_GROQ_KEY, models=MODELS,
                            base_url=f"http://127.0.0.1:{free_port()}/openai/v1")
    with pytest.raises(UpstreamUnavailable):
        await provider.complete(HELLO)


async def test_a_stalled_answer_times_out(fake_groq: FakeGroq) -> None:
    fake_groq.script(Stall(3))
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.5)) as http:
        with pytest.raises(UpstreamUnavailable, match="in time"):
            await groq(fake_groq, http).complete(HELLO)


async def test_stream_yields_text_then_usage(fake_groq: FakeGroq, http: httpx.AsyncClient) -> None:
    fake_groq.script(Answer("one two three"))

    chunks = [c async for c in await groq(fake_groq, http).open_stream(HELLO)]

    assert "".join(c.text for c in chunks) == "one two three"
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert fake_groq.requests[0]["stream"] is True


@pytest.mark.parametrize("failure", [BrokenStream(chunks=2), StreamError(chunks=1)])
async def test_a_stream_that_breaks_midway_raises(fake_groq: FakeGroq, http: httpx.AsyncClient,
                                                   failure: object) -> None:
    fake_groq.script(failure)
    received = []

    with pytest.raises(UpstreamUnavailable):
        async for chunk in await groq(fake_groq, http).open_stream(HELLO):
            received.append(chunk.text)

    assert received  # some text arrived before the break
