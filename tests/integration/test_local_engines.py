"""What the local provider does the same over both engines, with the embedded model: stop sequences
that never leak (streaming or not), and a cancelled `complete()` that stops its generation."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from app.adapters.local.provider import LocalProvider
from app.domain.models import ChatRequest
from tests.integration.local_fixtures import (
    LONG_ANSWER,
    MAX_TOKENS,
    ask,
    shared_llamacpp,
    shared_transformers,
    stream_all,
)

pytestmark = pytest.mark.model

# Continue sends multi-token stops such as these with its autocomplete requests.
CONTINUE_STOPS = ("\n\n\n", "\n```")
# A prompt whose greedy answer, on both engines, holds " of the" and a blank line.
STANZAS = "Write a short poem about the sea, in two stanzas."


@pytest.fixture(params=["transformers", "llamacpp"])
def provider(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> LocalProvider:
    """The session's loaded provider over each engine."""
    if request.param == "llamacpp":
        if importlib.util.find_spec("llama_cpp") is None:
            pytest.skip("llama-cpp-python is not installed")
        return shared_llamacpp()
    return shared_transformers(tmp_path_factory.getbasetemp() / "local-models")


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

