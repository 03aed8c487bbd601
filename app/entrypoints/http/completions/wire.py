"""Wire models of the legacy `POST /v1/completions`: the request and the `text_completion` answer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Literal, NotRequired, TypedDict

from pydantic import BaseModel, Field

from app.domain.errors import InvalidRequest
from app.domain.models import ChatRequest, Completion
from app.domain.streams import ChunkStream
from app.entrypoints.http import sse
from app.entrypoints.http.ids import text_completion_id
from app.entrypoints.http.wire import Answer, GenerationParams, UsageJSON, usage_json


class CompletionRequest(GenerationParams):
    """Body of the legacy `POST /v1/completions` (editor autocomplete)."""

    prompt_param: ClassVar[str] = "prompt"
    prompt: Any = Field(description="Text, or an array holding one text.")

    def to_domain(self) -> ChatRequest:
        """The domain request for a raw prompt (no chat template)."""
        prompt = self.prompt
        if not isinstance(prompt, (str, list)):
            raise InvalidRequest("The prompt must be a string.", param="prompt")
        if isinstance(prompt, list):
            if len(prompt) != 1 or not isinstance(prompt[0], str):
                raise InvalidRequest("Only one prompt, as text, is supported (not token arrays or "
                                     "several prompts).", param="prompt")
            prompt = prompt[0]
        if not prompt:
            raise InvalidRequest("The prompt must not be empty.", param="prompt")
        return ChatRequest(prompt=prompt, **self.domain_params())


class TextChoice(BaseModel):
    """The one choice of a `text_completion`."""

    index: int = 0
    text: str
    logprobs: None = None
    finish_reason: str | None


class TextCompletion(Answer):
    """A legacy `text_completion` (the whole answer)."""

    object: Literal["text_completion"] = "text_completion"
    choices: list[TextChoice]

    @classmethod
    def of(cls, completion: Completion) -> TextCompletion:
        """The wire answer for a finished domain completion."""
        return cls.answering(completion, id_=text_completion_id(), choice={
            "text": completion.text or "", "finish_reason": completion.finish_reason})


class TextChunkChoice(TypedDict):
    """The one choice of a streamed `text_completion` event."""

    index: int
    text: str
    logprobs: None
    finish_reason: str | None


class TextCompletionChunk(TypedDict):
    """One event of a streamed legacy answer (a plain dict: one per token)."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[TextChunkChoice]
    usage: NotRequired[UsageJSON]


async def text_events(stream: ChunkStream, include_usage: bool) -> AsyncIterator[bytes]:
    """Legacy `text_completion` events, usage last when asked, then `[DONE]`."""
    completion_id, created = text_completion_id(), int(time.time())
    usage = None
    chunk = stream.first
    async for chunk in stream:
        if chunk.text or chunk.finish_reason:
            yield sse.event(TextCompletionChunk(
                id=completion_id, object="text_completion", created=created, model=chunk.model,
                choices=[TextChunkChoice(index=0, text=chunk.text, logprobs=None,
                                         finish_reason=chunk.finish_reason)]))
        usage = chunk.usage or usage
    if include_usage and usage is not None:
        yield sse.event(TextCompletionChunk(id=completion_id, object="text_completion", created=created,
                                            model=chunk.model, choices=[], usage=usage_json(usage)))
    yield sse.DONE
