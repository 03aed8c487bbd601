"""The local provider's shell over a scripted engine: stops, limits before work, load once, cancellation."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from fastapi.testclient import TestClient

from app.adapters.local.provider import LocalProvider
from app.containers import Container
from app.domain.errors import ContextTooLong, InvalidRequest, NotSupportedLocally, Overloaded, ProviderUnavailable
from app.domain.generation import MAX_CHARS_PER_TOKEN
from app.domain.models import ChatMessage, ChatRequest
from app.main import create_app
from app.settings import Settings
from tests.support.local_engine import ScriptedEngine

POEM = ["In", " the", " depths", " of", " the", " sea", ",", "\n\n", "fish", " swim", "."]


def ask(text: str = "Write a poem.", **kwargs: object) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage(role="user", content=text),), **kwargs)  # type: ignore[arg-type]


def provider_over(engine: ScriptedEngine, **kwargs: object) -> LocalProvider:
    return LocalProvider(engine=engine, model_id="local/scripted", **kwargs)  # type: ignore[arg-type]


async def streamed(provider: LocalProvider, request: ChatRequest) -> list[str]:
    async with await provider.open_stream(request) as stream:
        return [chunk.text async for chunk in stream]


async def wait_until(condition: object) -> None:
    for _ in range(1000):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def test_a_multi_word_stop_is_never_sent_in_part_streaming_or_not() -> None:
    provider = provider_over(ScriptedEngine(POEM))

    whole = await provider.complete(ask(stop=(" of the",)))
    pieces = await streamed(provider, ask(stop=(" of the",)))

    assert whole.text == "In the depths" and whole.finish_reason == "stop"
    assert "".join(pieces) == "In the depths"
    assert not any(" of" in piece for piece in pieces)
    assert whole.usage.completion_tokens == 5  # generation ended with the stop's last token
    provider.close()


async def test_text_held_back_for_a_stop_that_never_completes_is_sent_at_the_end() -> None:
    provider = provider_over(ScriptedEngine(["a", "\n\n", "b", "\n\n"]))

    pieces = await streamed(provider, ask(stop=("\n\n\n",)))
    whole = await provider.complete(ask(stop=("\n\n\n",)))

    assert "".join(pieces) == whole.text == "a\n\nb\n\n"
    assert whole.usage.completion_tokens == 4
    provider.close()


async def test_finish_reason_is_length_at_the_token_limit() -> None:
    provider = provider_over(ScriptedEngine(POEM), max_tokens=3)

    answer = await provider.complete(ask())

    assert (answer.text, answer.finish_reason, answer.usage.completion_tokens) == ("In the depths", "length", 3)
    provider.close()


@pytest.mark.parametrize("seed", [2**64, 2**70, -1])
async def test_a_seed_outside_64_bits_is_an_invalid_request_naming_seed(seed: int) -> None:
    engine = ScriptedEngine()
    provider = provider_over(engine)

    with pytest.raises(InvalidRequest) as refused:
        await provider.complete(ask(temperature=0.7, seed=seed))

    assert refused.value.param == "seed"
    assert engine.loads == 0  # refused before any work
    provider.close()


async def test_a_prompt_too_long_by_its_characters_alone_is_refused_without_tokenizing() -> None:
    engine = ScriptedEngine(context_length=64)
    provider = provider_over(engine)

    with pytest.raises(ContextTooLong) as refused:
        await provider.complete(ask("x" * (64 * MAX_CHARS_PER_TOKEN + 1)))
    with pytest.raises(ContextTooLong) as refused_legacy:
        await provider.complete(ChatRequest(prompt="x" * (64 * MAX_CHARS_PER_TOKEN + 1)))

    assert engine.encode_threads == []
    assert refused.value.param == "messages" and refused_legacy.value.param == "prompt"
    provider.close()


async def test_a_lone_surrogate_in_the_prompt_is_an_invalid_request() -> None:
    engine = ScriptedEngine()
    provider = provider_over(engine)

    with pytest.raises(InvalidRequest) as refused:
        await provider.complete(ask("half a pair: \ud800"))

    assert refused.value.param == "messages"
    provider.close()


async def test_a_prompt_too_long_in_tokens_is_refused_naming_the_limit() -> None:
    provider = provider_over(ScriptedEngine(context_length=64))

    with pytest.raises(ContextTooLong) as refused:
        await provider.complete(ask("word " * 64))

    assert "64" in refused.value.message
    provider.close()


async def test_tokenizing_runs_off_the_event_loop() -> None:
    engine = ScriptedEngine()
    provider = provider_over(engine)

    await provider.complete(ask())

    assert engine.encode_threads and threading.get_ident() not in engine.encode_threads
    provider.close()


async def test_the_queue_limit_is_checked_before_tokenizing() -> None:
    engine = ScriptedEngine(POEM)
    engine.gate.clear()  # the first request holds the only slot, mid-generation
    provider = provider_over(engine, max_queue=0)
    first = asyncio.create_task(provider.complete(ask()))
    await wait_until(lambda: len(engine.encode_threads) == 1)

    with pytest.raises(Overloaded):
        await provider.complete(ask())

    assert len(engine.encode_threads) == 1
    engine.gate.set()
    assert (await first).text == "".join(POEM)
    provider.close()


async def test_concurrent_first_requests_share_one_load() -> None:
    engine = ScriptedEngine()
    provider = provider_over(engine)

    answers = await asyncio.gather(*(provider.complete(ask()) for _ in range(5)))

    assert engine.loads == 1 and provider.is_loaded
    assert {a.text for a in answers} == {"Hello world"}
    provider.close()


async def test_a_failed_load_is_unavailable_and_the_next_request_loads_again() -> None:
    engine = ScriptedEngine(fail_load=1)
    provider = provider_over(engine)

    with pytest.raises(ProviderUnavailable):
        await provider.complete(ask())
    assert not provider.is_loaded
    answer = await provider.complete(ask())

    assert engine.loads == 2 and answer.text == "Hello world"
    provider.close()


async def test_a_runtime_failure_is_unavailable_for_complete_and_for_open_stream() -> None:
    provider = provider_over(ScriptedEngine(fail_generate=True))

    with pytest.raises(ProviderUnavailable):
        await provider.complete(ask())
    with pytest.raises(ProviderUnavailable):
        await provider.open_stream(ask())
    provider.close()


async def test_cancelling_complete_stops_the_generation() -> None:
    engine = ScriptedEngine(["word "] * 1000)
    engine.gate.clear()
    provider = provider_over(engine, max_tokens=1000)
    answering = asyncio.create_task(provider.complete(ask()))
    await wait_until(engine.started.is_set)  # generating, held before its first token

    answering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await answering
    engine.gate.set()

    assert await asyncio.to_thread(engine.finished.wait, 10)
    assert engine.tokens_emitted < 1000
    provider.close()


async def test_closing_an_open_stream_stops_the_generation() -> None:
    engine = ScriptedEngine(["word "] * 1000, pause=0.005)
    provider = provider_over(engine, max_tokens=1000)

    stream = await provider.open_stream(ask())
    await stream.aclose()

    assert await asyncio.to_thread(engine.finished.wait, 10)
    assert engine.tokens_emitted < 1000
    provider.close()


def post_chat_to_scripted_local(tmp_path: Path, body: dict[str, object]) -> Any:
    """POST /v1/chat/completions to the app, whose local model is a scripted engine (no Groq key)."""
    container = Container()
    container.local_engine.override(providers.Object(ScriptedEngine()))
    settings = Settings(_env_file=None, key_file=str(tmp_path / "key.json"))
    with TestClient(create_app(settings, container)) as client:
        key = client.app.state.container.key_service().current().value  # type: ignore[attr-defined]
        return client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                           json={"messages": [{"role": "user", "content": "Hi"}], **body})


def test_a_seed_of_2_to_the_64_on_the_local_model_is_a_400_naming_seed(tmp_path: Path) -> None:
    answer = post_chat_to_scripted_local(tmp_path, {"seed": 2**64, "temperature": 0.5})

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "seed"


@pytest.mark.parametrize("fields", [
    {"tool_choice": "required", "tools": ({"type": "function", "function": {"name": "f"}},)},
    {"tool_choice": {"type": "function", "function": {"name": "f"}},
     "tools": ({"type": "function", "function": {"name": "f"}},)},
])
async def test_a_required_tool_call_is_refused_not_answered_in_plain_text(fields: dict[str, object]) -> None:
    engine = ScriptedEngine(["plain ", "text"])
    provider = provider_over(engine)

    with pytest.raises(NotSupportedLocally) as refused:
        await provider.complete(ask(**fields))
    with pytest.raises(NotSupportedLocally):
        await provider.open_stream(ask(**fields))

    assert refused.value.param == "tool_choice"
    assert engine.tokens_emitted == 0  # nothing was generated


BAD_FORMATS = [
    {"type": "json_schema"},  # no json_schema object
    {"type": "json_schema", "json_schema": {"name": "x", "schema": ["not", "a", "schema"]}},
    {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "wobbly"}}},
    {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/$defs/missing"}}},
    {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {f"field_{i}": {"type": "string", "description": "x" * 100}
                                         for i in range(400)}}}},  # over 32 kB
]


@pytest.mark.parametrize("response_format", BAD_FORMATS)
async def test_a_schema_the_local_model_cannot_follow_is_a_400_before_any_work(
        response_format: dict[str, object]) -> None:
    engine = ScriptedEngine(["plain ", "text"])
    provider = provider_over(engine)

    with pytest.raises(InvalidRequest) as refused:
        await provider.complete(ask(response_format=response_format))
    with pytest.raises(InvalidRequest):
        await provider.open_stream(ask(response_format=response_format))

    assert refused.value.param == "response_format"
    assert engine.loads == 0 and engine.tokens_emitted == 0  # refused before the model loads


def test_a_bad_schema_on_the_local_model_is_a_400_in_the_openai_envelope(tmp_path: Path) -> None:
    answer = post_chat_to_scripted_local(tmp_path, {"response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "wobbly"}}}})

    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "response_format"
    assert "wobbly" in error["message"]


async def test_optional_tools_and_text_formats_are_still_answered() -> None:
    provider = provider_over(ScriptedEngine(["plain ", "text"]))

    answer = await provider.complete(ask(tool_choice="auto", tools=({"type": "function", "function": {"name": "f"}},),
                                         response_format={"type": "text"}))

    assert answer.text == "plain text"
