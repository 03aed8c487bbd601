"""The local provider over the llama.cpp engine, with the embedded GGUF model (skipped without
llama-cpp-python)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.adapters.local.provider import LocalProvider
from app.containers import Container, config_from_settings
from app.domain.errors import ContextTooLong, Overloaded
from app.entrypoints.http.errors import domain_error_response
from app.settings import Settings
from tests.integration.local_fixtures import (
    LONG_ANSWER,
    MAX_TOKENS,
    ask,
    llamacpp_provider,
    shared_llamacpp,
    shared_transformers,
    stream_all,
)

pytest.importorskip("llama_cpp")

from app.adapters.local.llamacpp import LlamaCppEngine  # noqa: E402  (needs llama_cpp to be useful)

pytestmark = pytest.mark.model


@pytest.fixture
def llama() -> LocalProvider:
    """The session's loaded provider over the llama.cpp engine (it loads in well under a second)."""
    return shared_llamacpp()


@pytest.fixture(scope="session")
def local_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's model cache (shared with the transformers tests)."""
    return tmp_path_factory.getbasetemp() / "local-models"


@pytest.fixture
def transformers(local_cache_dir: Path) -> LocalProvider:
    """The session's loaded provider over the transformers engine."""
    return shared_transformers(local_cache_dir)


async def test_both_runners_answer_the_same_prompt(llama: LocalProvider,
                                                   transformers: LocalProvider) -> None:
    request = ask("What is the capital of France? Answer in one sentence.", max_tokens=24)

    by_llama = await llama.complete(request)
    by_transformers = await transformers.complete(request)

    assert by_llama.text and by_llama.text.strip()
    assert by_transformers.text and by_transformers.text.strip()
    assert by_llama.provider == by_transformers.provider == "local"
    assert by_llama.usage.prompt_tokens == by_transformers.usage.prompt_tokens  # same template, same vocab


async def test_streams_text_with_usage_and_caps_max_tokens(llama: LocalProvider) -> None:
    chunks = await stream_all(llama, ask(LONG_ANSWER, max_tokens=10_000))

    assert "".join(c.text for c in chunks).strip()
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == MAX_TOKENS


async def test_stop_sequence_ends_the_answer_early(llama: LocalProvider) -> None:
    full = await llama.complete(ask(LONG_ANSWER, max_tokens=32))
    assert full.text and "," in full.text

    cut = await llama.complete(ask(LONG_ANSWER, max_tokens=32, stop=(",",)))

    assert cut.text == full.text[: full.text.index(",")]
    assert cut.finish_reason == "stop"


async def test_closing_the_stream_stops_generation(llama: LocalProvider) -> None:
    before = llama.tokens_generated
    stream = await llama.open_stream(ask(LONG_ANSWER, max_tokens=MAX_TOKENS))
    for _ in range(3):
        await anext(stream)
    await stream.aclose()
    await llama.complete(ask("Say hi.", max_tokens=1))  # runs only after the first generation ended

    assert llama.tokens_generated - before - 1 < MAX_TOKENS // 2


async def test_a_prompt_longer_than_the_context_is_rejected_naming_the_limit(llama: LocalProvider) -> None:
    with pytest.raises(ContextTooLong) as rejected:
        await llama.complete(ask("word " * 3000))

    assert "2048" in rejected.value.message
    assert domain_error_response(rejected.value)[0] == 400


async def test_requests_beyond_the_queue_get_503_with_retry_after() -> None:
    provider = llamacpp_provider(max_queue=1, context_tokens=1024)
    running = await provider.open_stream(ask(LONG_ANSWER))
    waiting = asyncio.create_task(provider.complete(ask("Say hi.", max_tokens=2)))
    for _ in range(3000):  # the waiting request reaches the queue within a few event-loop turns
        if provider.admission.waiting == 1:
            break
        await asyncio.sleep(0.01)
    assert provider.admission.waiting == 1

    with pytest.raises(Overloaded) as refused:
        await provider.complete(ask("Say hi.", max_tokens=2))

    status, _, headers = domain_error_response(refused.value)
    assert status == 503 and int(headers["Retry-After"]) >= 1
    await running.aclose()
    assert (await waiting).text is not None
    provider.close()


def test_the_container_selects_llamacpp_from_settings(tmp_path: Path) -> None:
    container = Container()
    container.config.from_dict(config_from_settings(Settings(
        _env_file=None, key_file=str(tmp_path / "key.json"), local_runner="llamacpp")))

    assert isinstance(container.local().engine, LlamaCppEngine)
