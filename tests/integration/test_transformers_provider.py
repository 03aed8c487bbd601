"""TransformersProvider with the real embedded model (no model hub)."""

from __future__ import annotations

import pytest

from app.adapters.local_model import resolve_model_source
from app.adapters.transformers_runner import TransformersProvider
from app.domain.models import ChatMessage, ChatRequest

pytestmark = pytest.mark.model


async def test_embedded_model_answers_a_prompt_with_real_token_counts() -> None:
    provider = TransformersProvider(source=resolve_model_source(""), max_tokens=24)
    try:
        completion = await provider.complete(
            ChatRequest(messages=(ChatMessage(role="user", content="What is the capital of France?"),)))
    finally:
        provider.close()

    assert completion.text and completion.text.strip()
    assert completion.model == "local/SmolLM2-135M-Instruct"
    assert 0 < completion.usage.completion_tokens <= 24
    assert completion.usage.prompt_tokens > 5  # the chat template wraps the prompt
