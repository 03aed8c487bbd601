"""Rules every local runner applies: the token budget, and a whole answer from a stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.domain.errors import ContextTooLong
from app.domain.models import Chunk, Completion, FinishReason, Usage


def token_budget(*, prompt_tokens: int, context_length: int, requested: int | None, cap: int) -> int:
    """Tokens to generate: the request's (or the cap), never past the cap or the context.

    Raises ContextTooLong when the prompt alone fills the context.
    """
    if prompt_tokens >= context_length:
        raise ContextTooLong(f"The prompt is {prompt_tokens} tokens; the local model's context "
                             f"is {context_length} tokens.", param="messages")
    return min(requested or cap, cap, context_length - prompt_tokens)


async def collect(chunks: AsyncIterator[Chunk], *, model: str, provider: str) -> Completion:
    """The whole answer a stream adds up to (text, finish reason, last usage)."""
    text: list[str] = []
    usage = Usage(0, 0)
    finish: FinishReason = "stop"
    async for chunk in chunks:
        text.append(chunk.text)
        usage = chunk.usage or usage
        finish = chunk.finish_reason or finish
    return Completion(text="".join(text), model=model, provider=provider, finish_reason=finish, usage=usage)
