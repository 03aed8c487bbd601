"""OpenAI wire models and the mapping between them and domain types."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator, model_validator

from app.domain.models import ChatMessage, ChatRequest, Chunk, Completion
from app.domain.streams import ChunkStream

log = logging.getLogger(__name__)


class WireModel(BaseModel):
    """Accepts and ignores unknown fields (real clients send fields we don't use)."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _log_unknown_fields(self) -> WireModel:
        if self.model_extra:
            log.debug("ignoring unknown fields %s", sorted(self.model_extra))
        return self


class PromptChatRequest(WireModel):
    """Body of the seed's `/chat` and `/local-chat`."""

    prompt: StrictStr = Field(description="The user's message.")
    stream: StrictBool = False

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a non-empty string")
        return value

    def to_domain(self) -> ChatRequest:
        """The domain request: one user message."""
        return ChatRequest(messages=(ChatMessage(role="user", content=self.prompt),))


def new_completion_id() -> str:
    """An id in OpenAI's `chatcmpl-` form."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage_to_wire(completion_usage: Any) -> dict[str, int]:
    """Domain usage as OpenAI's usage object."""
    return {"prompt_tokens": completion_usage.prompt_tokens,
            "completion_tokens": completion_usage.completion_tokens,
            "total_tokens": completion_usage.total_tokens}


def completion_to_wire(completion: Completion) -> dict[str, Any]:
    """A `chat.completion` object."""
    message: dict[str, Any] = {"role": "assistant", "content": completion.text}
    if completion.reasoning:
        message["reasoning"] = completion.reasoning
    if completion.tool_calls:
        message["tool_calls"] = list(completion.tool_calls)
    return {
        "id": new_completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": completion.model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": completion.finish_reason}],
        "usage": usage_to_wire(completion.usage),
    }


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


async def chat_chunks_to_sse(stream: ChunkStream, *, include_usage: bool) -> AsyncIterator[str]:
    """`chat.completion.chunk` events, usage last when asked, then `[DONE]`."""
    completion_id, created = new_completion_id(), int(time.time())

    def event(chunk: Chunk, delta: dict[str, Any], finish: str | None) -> str:
        return _sse({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                     "model": chunk.model,
                     "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    yield event(stream.first, {"role": "assistant", "content": ""}, None)
    usage = None
    chunk = stream.first
    async for chunk in stream:
        delta: dict[str, Any] = {}
        if chunk.reasoning:
            delta["reasoning"] = chunk.reasoning
        if chunk.text:
            delta["content"] = chunk.text
        if chunk.tool_calls:
            delta["tool_calls"] = list(chunk.tool_calls)
        if delta or chunk.finish_reason:
            yield event(chunk, delta, chunk.finish_reason)
        usage = chunk.usage or usage
    if include_usage and usage is not None:
        yield _sse({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                    "model": chunk.model, "choices": [], "usage": usage_to_wire(usage)})
    yield "data: [DONE]\n\n"

