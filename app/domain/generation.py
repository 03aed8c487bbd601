"""Rules every local runner applies: the prompt's size, the token budget, a whole answer from a stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.domain.errors import ContextTooLong, InvalidRequest
from app.domain.models import ChatRequest, Chunk, Completion, FinishReason, Usage

# Characters per token, on average over a prompt, that no real text reaches: English averages
# about 4, code about 3 to 5, whitespace-heavy text about 10 (single tokens reach 81 characters in
# SmolLM2's vocabulary, runs of spaces, but a prompt made only of them is no real prompt). A prompt
# with more characters than this times the context cannot fit, and is refused without tokenizing.
MAX_CHARS_PER_TOKEN = 32


def prompt_param(request: ChatRequest) -> str:
    """The request field that holds the prompt: `prompt` (legacy completions) or `messages`."""
    return "prompt" if request.prompt is not None else "messages"


def prompt_texts(request: ChatRequest) -> list[str]:
    """The texts a request asks the model to read."""
    return [request.prompt] if request.prompt is not None else [m.content for m in request.messages]


def prompt_characters(request: ChatRequest) -> int:
    """Characters of the text a request asks the model to read."""
    return sum(len(text) for text in prompt_texts(request))


def check_prompt_text(request: ChatRequest) -> None:
    """Refuse a prompt no tokenizer can read: one holding a lone surrogate (not valid Unicode text)."""
    for text in prompt_texts(request):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest("The prompt is not valid Unicode text (it holds a lone surrogate).",
                                 param=prompt_param(request)) from None


def check_prompt_characters(request: ChatRequest, *, context_length: int) -> None:
    """Refuse, before any tokenizing, a prompt whose characters alone cannot fit the context."""
    characters = prompt_characters(request)
    if characters > context_length * MAX_CHARS_PER_TOKEN:
        raise ContextTooLong(f"The prompt is {characters} characters, far more than the local model's "
                             f"context of {context_length} tokens can hold.", param=prompt_param(request))


def token_budget(*, prompt_tokens: int, context_length: int, requested: int | None, cap: int,
                 param: str = "messages") -> int:
    """Tokens to generate: the request's (or the cap), never past the cap or the context.

    Raises ContextTooLong (naming `param`) when the prompt alone fills the context.
    """
    if prompt_tokens >= context_length:
        raise ContextTooLong(f"The prompt is {prompt_tokens} tokens; the local model's context "
                             f"is {context_length} tokens.", param=param)
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
