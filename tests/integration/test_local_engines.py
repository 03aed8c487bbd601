"""What the local provider does the same over both engines, with the embedded model: stop sequences
that never leak (streaming or not), generation that stops when its stream closes or its `complete()`
is cancelled, the context limit, and the bounded queue."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

from app.adapters.local.provider import LocalProvider
from app.domain.errors import ContextTooLong, Overloaded
from app.domain.models import ChatRequest
from app.entrypoints.http.errors import domain_error_response
from tests.integration.local_fixtures import (
    LONG_ANSWER,
    MAX_TOKENS,
    ask,
    llamacpp_provider,
    local_cache_dir,  # noqa: F401  (a fixture)
    new_transformers,
    shared_llamacpp,
    shared_transformers,
    stream_all,
)

pytestmark = pytest.mark.model

# Continue sends multi-token stops such as these with its autocomplete requests.
CONTINUE_STOPS = ("\n\n\n", "\n```")
# A prompt whose greedy answer, on both engines, holds " of the" and a blank line.
STANZAS = "Write a short poem about the sea, in two stanzas."


# The context each session provider has, and a prompt of more words than that.
CONTEXT = {"transformers": (8192, 9000), "llamacpp": (2048, 3000)}


@pytest.fixture(params=["transformers", "llamacpp"])
def engine(request: pytest.FixtureRequest) -> str:
    """Each engine's name (llama.cpp skipped when llama-cpp-python is not installed)."""
    if request.param == "llamacpp" and importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed")
    return str(request.param)


@pytest.fixture
def provider(engine: str, local_cache_dir: Path) -> LocalProvider:
    """The session's loaded provider over each engine."""
    return shared_llamacpp() if engine == "llamacpp" else shared_transformers(local_cache_dir)


def one_at_a_time(engine: str, cache_dir: Path) -> LocalProvider:
    """A fresh provider over `engine` that runs one request and lets one wait."""
    if engine == "llamacpp":
        return llamacpp_provider(max_queue=1, context_tokens=1024)
    return new_transformers(cache_dir, max_queue=1, batch_size=1)


async def _streamed_text(provider: LocalProvider, request: ChatRequest) -> tuple[list[str], str | None]:
    chunks = await stream_all(provider, request)
    return [c.text for c in chunks if c.text], chunks[-1].finish_reason


async def test_a_multi_word_stop_ends_the_answer_before_it_streaming_or_not(provider: LocalProvider) -> None:
    full = await provider.complete(ask(STANZAS, max_tokens=MAX_TOKENS))
    assert full.text and " of the" in full.text, full.text
    before_stop = full.text[: full.text.index(" of the")]
    request = ask(STANZAS, max_tokens=MAX_TOKENS, stop=(" of the", *CONTINUE_STOPS))

    whole = await provider.complete(request)
    pieces, finish = await _streamed_text(provider, request)

    assert whole.text == before_stop and whole.finish_reason == "stop"
    assert "".join(pieces) == before_stop and finish == "stop"
    assert whole.usage.completion_tokens < full.usage.completion_tokens  # generation stopped there


async def test_a_stop_spanning_a_blank_line_is_cut_and_a_held_newline_is_not_lost(
        provider: LocalProvider) -> None:
    full = await provider.complete(ask(STANZAS, max_tokens=MAX_TOKENS))
    assert full.text and "\n\n" in full.text, full.text
    first_paragraph, rest = full.text.split("\n\n", 1)
    next_word = rest.split()[0]
    stop = "\n\n" + next_word  # a blank line then a word: several tokens
    # "\n\n\n" never completes, so the blank line it held back must come out unchanged.
    only_continue = ask(STANZAS, max_tokens=MAX_TOKENS, stop=CONTINUE_STOPS)
    blank_then_word = ask(STANZAS, max_tokens=MAX_TOKENS, stop=(stop, *CONTINUE_STOPS))

    untouched = await provider.complete(only_continue)
    untouched_pieces, _ = await _streamed_text(provider, only_continue)
    cut = await provider.complete(blank_then_word)
    cut_pieces, finish = await _streamed_text(provider, blank_then_word)

    assert untouched.text == "".join(untouched_pieces) == full.text
    assert cut.text == "".join(cut_pieces) == first_paragraph
    assert cut.finish_reason == finish == "stop"


async def test_cancelling_complete_stops_the_generation(provider: LocalProvider) -> None:
    before = provider.tokens_generated
    answering = asyncio.create_task(provider.complete(ask(LONG_ANSWER, max_tokens=MAX_TOKENS)))
    for _ in range(3000):  # a few tokens in, the client goes away
        if provider.tokens_generated - before >= 3:
            break
        await asyncio.sleep(0.01)
    assert provider.tokens_generated - before >= 3

    answering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await answering
    # The next request runs on the same generation thread, so it starts only once the first stopped.
    await provider.complete(ask("Say hi.", max_tokens=1))

    assert provider.tokens_generated - before - 1 < MAX_TOKENS // 2



async def test_closing_the_stream_stops_generation(provider: LocalProvider) -> None:
    before = provider.tokens_generated
    stream = await provider.open_stream(ask(LONG_ANSWER, max_tokens=MAX_TOKENS))
    for _ in range(3):
        await anext(stream)
    await stream.aclose()
    # The next request runs on the same generation thread, so it starts only once the first stopped.
    await provider.complete(ask("Say hi.", max_tokens=1))

    generated_by_closed_stream = provider.tokens_generated - before - 1
    assert generated_by_closed_stream < MAX_TOKENS // 2


async def test_a_prompt_longer_than_the_context_is_rejected_naming_the_limit(
        provider: LocalProvider, engine: str) -> None:
    limit, words = CONTEXT[engine]
    with pytest.raises(ContextTooLong) as rejected:
        await provider.complete(ask("word " * words))

    assert str(limit) in rejected.value.message
    assert domain_error_response(rejected.value)[0] == 400


async def test_requests_beyond_the_queue_get_503_with_retry_after(engine: str, local_cache_dir: Path,
                                                                   provider: LocalProvider) -> None:
    fresh = one_at_a_time(engine, local_cache_dir)
    running = await fresh.open_stream(ask(LONG_ANSWER))
    waiting = asyncio.create_task(fresh.complete(ask("Say hi.", max_tokens=2)))
    for _ in range(3000):  # the waiting request reaches the queue within a few event-loop turns
        if fresh.admission.waiting == 1:
            break
        await asyncio.sleep(0.01)
    assert fresh.admission.waiting == 1

    with pytest.raises(Overloaded) as refused:
        await fresh.complete(ask("Say hi.", max_tokens=2))

    status, body, headers = domain_error_response(refused.value)
    assert status == 503 and int(headers["Retry-After"]) >= 1
    assert body["error"]["code"] == "overloaded"
    await running.aclose()
    assert (await waiting).text is not None  # the waiting request is served once the slot frees
    fresh.close()
