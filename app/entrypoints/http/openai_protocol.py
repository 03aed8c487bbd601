"""OpenAI wire models of the compatible API, mapped to and from domain types.

Clients send fields we don't use (Continue: frequency_penalty, presence_penalty,
prediction, parallel_tool_calls ...): they are accepted and ignored, with a
debug log (WireModel). Values we cannot honour are a 400 naming the parameter.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import Field, field_validator

from app.domain.chat import ModelInfo
from app.domain.errors import InvalidRequest
from app.domain.models import ChatMessage, ChatRequest, Completion
from app.domain.streams import ChunkStream
from app.entrypoints.http.protocol import WireModel, usage_to_wire

# OpenAI's own ranges; values outside them are a 400 before anything runs.
Temperature = Field(default=None, ge=0, le=2)
TopP = Field(default=None, ge=0, le=1)
MaxTokens = Field(default=None, ge=1)


class StreamOptions(WireModel):
    """`stream_options`: only `include_usage` means something here."""

    include_usage: bool = False


class WireMessage(WireModel):
    """One entry of `messages`."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _content_shape(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(p, dict) and isinstance(p.get("type"), str)
                                           for p in value):
            return value
        raise ValueError("must be a string or an array of content parts with a `type`")


def _stop_sequences(value: Any) -> Any:
    """`stop` as a list: a string is one stop sequence."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return value
    raise ValueError("must be a string or an array of strings")


def _only_one(value: int | None) -> int | None:
    if value is not None and value != 1:
        raise ValueError("only n=1 is supported")
    return value


class _GenerationParams(WireModel):
    """Parameters shared by chat and legacy completions."""

    model: str | None = None
    max_tokens: int | None = MaxTokens
    max_completion_tokens: int | None = MaxTokens
    temperature: float | None = Temperature
    top_p: float | None = TopP
    n: int | None = None
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None

    _stop = field_validator("stop", mode="before")(_stop_sequences)
    _n = field_validator("n")(_only_one)

    @property
    def include_usage(self) -> bool:
        """Whether a stream ends with a usage chunk."""
        return bool(self.stream_options and self.stream_options.include_usage)

    def _common(self) -> dict[str, Any]:
        return {"model": self.model or None,
                "max_tokens": self.max_completion_tokens or self.max_tokens,
                "temperature": self.temperature, "top_p": self.top_p,
                "stop": tuple(s for s in self.stop if s), "seed": self.seed, "user": self.user,
                "include_usage": self.include_usage}


class ChatCompletionRequest(_GenerationParams):
    """Body of `POST /v1/chat/completions`."""

    messages: list[WireMessage] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    reasoning_format: Literal["parsed", "raw", "hidden"] | None = None
    include_reasoning: bool | None = None

    @field_validator("response_format")
    @classmethod
    def _known_format(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and value.get("type") not in ("text", "json_object", "json_schema"):
            raise ValueError("type must be one of text, json_object, json_schema")
        return value

    def to_domain(self) -> ChatRequest:
        """The domain request; raises InvalidRequest for content we cannot take."""
        return ChatRequest(messages=tuple(_message(i, m) for i, m in enumerate(self.messages)),
                           tools=tuple(self.tools) if self.tools else None, tool_choice=self.tool_choice,
                           response_format=self.response_format, reasoning_effort=self.reasoning_effort,
                           reasoning_format=self.reasoning_format, include_reasoning=self.include_reasoning,
                           **self._common())


class CompletionRequest(_GenerationParams):
    """Body of the legacy `POST /v1/completions` (editor autocomplete)."""

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
        return ChatRequest(prompt=prompt, **self._common())


def _message(index: int, message: WireMessage) -> ChatMessage:
    """A wire message as a domain message: text parts joined, other parts refused."""
    param = f"messages[{index}].content"
    content = message.content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            kind = part["type"]
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind in ("image_url", "input_image", "image"):
                raise InvalidRequest(f"Image input is not supported: the models served here cannot see "
                                     f"images ({param}[{j}] is an image part). Send text only.",
                                     param=f"{param}[{j}]")
            else:
                raise InvalidRequest(f"Content parts of type `{kind}` are not supported; send text parts.",
                                     param=f"{param}[{j}]")
        content = "\n".join(texts)
    if content is None:
        if message.role != "assistant":
            raise InvalidRequest(f"Messages with role `{message.role}` need content.", param=param)
        content = ""
    return ChatMessage(role="system" if message.role == "developer" else message.role, content=content,
                       name=message.name, tool_call_id=message.tool_call_id,
                       tool_calls=tuple(message.tool_calls) if message.tool_calls else None)


def models_to_wire(models: list[ModelInfo]) -> dict[str, Any]:
    """OpenAI's model list."""
    return {"object": "list", "data": [model_to_wire(m) for m in models]}


def model_to_wire(model: ModelInfo) -> dict[str, Any]:
    """One OpenAI model object; `owned_by` says which side serves it."""
    wire: dict[str, Any] = {"id": model.id, "object": "model", "created": 0, "owned_by": model.provider}
    if model.context_window is not None:
        wire["context_window"] = model.context_window
    return wire


def text_completion_to_wire(completion: Completion) -> dict[str, Any]:
    """A legacy `text_completion` object."""
    return {
        "id": _completion_id(),
        "object": "text_completion",
        "created": int(time.time()),
        "model": completion.model,
        "choices": [{"index": 0, "text": completion.text or "", "logprobs": None,
                     "finish_reason": completion.finish_reason}],
        "usage": usage_to_wire(completion.usage),
    }


async def text_chunks_to_sse(stream: ChunkStream, *, include_usage: bool) -> AsyncIterator[str]:
    """Legacy `text_completion` events, usage last when asked, then `[DONE]`."""
    completion_id, created = _completion_id(), int(time.time())
    usage = None
    chunk = stream.first
    async for chunk in stream:
        if chunk.text or chunk.finish_reason:
            yield _sse({"id": completion_id, "object": "text_completion", "created": created,
                        "model": chunk.model,
                        "choices": [{"index": 0, "text": chunk.text, "logprobs": None,
                                     "finish_reason": chunk.finish_reason}]})
        usage = chunk.usage or usage
    if include_usage and usage is not None:
        yield _sse({"id": completion_id, "object": "text_completion", "created": created,
                    "model": chunk.model, "choices": [], "usage": usage_to_wire(usage)})
    yield "data: [DONE]\n\n"


def _completion_id() -> str:
    return f"cmpl-{uuid.uuid4().hex}"


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"

