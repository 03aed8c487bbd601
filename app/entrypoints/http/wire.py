"""Wire pieces more than one endpoint family uses: the request base, generation parameters,
usage, and the `chat.completion` object with its chunk (the seed's chat answers with it too).

Clients send fields we don't use (Continue: frequency_penalty, presence_penalty,
prediction, parallel_tool_calls ...): they are accepted and ignored, with a
debug log (WireModel). Values we cannot honour are a 400 naming the parameter.
Whole answers are built once as models and sent as their JSON bytes (`model_response`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Literal, NotRequired, Self, TypedDict

from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.domain.models import Chunk, Completion
from app.domain.models import Usage as DomainUsage
from app.domain.streams import ChunkStream
from app.entrypoints.http import sse
from app.entrypoints.http.ids import chat_completion_id
from app.entrypoints.http.json_codec import dump

log = logging.getLogger(__name__)

MAX_SEED = 2**64 - 1


def _is_none(value: object) -> bool:
    return value is None


def omitted_if_none(**kwargs: Any) -> Any:
    """A field left out of the JSON when it is None (OpenAI omits these rather than sending null)."""
    return Field(default=None, exclude_if=_is_none, **kwargs)


class WireModel(BaseModel):
    """A request body: accepts and ignores unknown fields (real clients send fields we don't use)."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _log_unknown_fields(self) -> WireModel:
        if self.model_extra:
            log.debug("ignoring unknown fields %s", sorted(self.model_extra))
        return self


# --- requests -----------------------------------------------------------------------------------

# OpenAI's own ranges; values outside them are a 400 before anything runs.
Temperature = Field(default=None, ge=0, le=2)
TopP = Field(default=None, ge=0, le=1)
MaxTokens = Field(default=None, ge=1)


class StreamOptions(WireModel):
    """`stream_options`: only `include_usage` means something here."""

    include_usage: bool = False


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


class GenerationParams(WireModel):
    """Parameters shared by chat and legacy completions."""

    model: str | None = None
    max_tokens: int | None = MaxTokens
    max_completion_tokens: int | None = MaxTokens
    temperature: float | None = Temperature
    top_p: float | None = TopP
    n: int | None = None
    stop: list[str] = Field(default_factory=list)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, description="0 to 2**64-1.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None

    _stop = field_validator("stop", mode="before")(_stop_sequences)
    _n = field_validator("n")(_only_one)

    @property
    def include_usage(self) -> bool:
        """Whether a stream ends with a usage chunk."""
        return bool(self.stream_options and self.stream_options.include_usage)

    def domain_params(self) -> dict[str, Any]:
        """The generation fields of the domain `ChatRequest`."""
        return {"model": self.model or None,
                "max_tokens": self.max_completion_tokens or self.max_tokens,
                "temperature": self.temperature, "top_p": self.top_p,
                "stop": tuple(s for s in self.stop if s), "seed": self.seed, "user": self.user,
                "include_usage": self.include_usage}


# --- responses ----------------------------------------------------------------------------------

class UsageJSON(TypedDict):
    """OpenAI's usage object, as a stream's last event carries it."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


def usage_json(usage: DomainUsage) -> UsageJSON:
    """The wire form of domain usage."""
    return UsageJSON(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                     total_tokens=usage.total_tokens)


class Usage(BaseModel):
    """OpenAI's usage object."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    """The answer's message; `content` is null when the model only called tools."""

    role: Literal["assistant"] = "assistant"
    content: str | None
    reasoning: str | None = omitted_if_none()
    tool_calls: list[dict[str, Any]] | None = omitted_if_none()


class ChatChoice(BaseModel):
    """The one choice of a `chat.completion`."""

    index: int = 0
    message: AssistantMessage
    logprobs: None = None
    finish_reason: str | None


class Answer(BaseModel):
    """What a whole `chat.completion` and `text_completion` share; `model` names who answered."""

    id: str
    object: str
    created: int
    model: str
    choices: list[Any]
    usage: Usage

    @classmethod
    def answering(cls, completion: Completion, *, id_: str, choice: dict[str, Any]) -> Self:
        """The answer for a finished domain completion, with its one choice.

        One validation of plain data (in pydantic-core) is cheaper than building each part.
        """
        return cls.model_validate({"id": id_, "created": int(time.time()), "model": completion.model,
                                   "choices": [choice], "usage": usage_json(completion.usage)})


class ChatCompletion(Answer):
    """A `chat.completion`."""

    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]

    @classmethod
    def of(cls, completion: Completion) -> ChatCompletion:
        """The wire answer for a finished domain completion."""
        tool_calls = list(completion.tool_calls) if completion.tool_calls else None
        return cls.answering(completion, id_=chat_completion_id(), choice={
            "message": {"content": completion.text, "reasoning": completion.reasoning or None,
                        "tool_calls": tool_calls},
            "finish_reason": completion.finish_reason})


# Chunks are plain dicts (typed below) serialized straight to bytes: one per token, so the
# cheapest path; the OpenAPI document describes an event stream as text anyway.

class ChunkDelta(TypedDict, total=False):
    """What a chunk adds to the message."""

    role: Literal["assistant"]
    content: str
    reasoning: str
    tool_calls: list[dict[str, Any]]


class ChunkChoice(TypedDict):
    """The one choice of a `chat.completion.chunk`."""

    index: int
    delta: ChunkDelta
    logprobs: None
    finish_reason: str | None


class ChatCompletionChunk(TypedDict):
    """One event of a streamed chat answer; the last one before `[DONE]` may carry only usage."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: NotRequired[UsageJSON]


async def chat_events(stream: ChunkStream, include_usage: bool) -> AsyncIterator[bytes]:
    """`chat.completion.chunk` events: a role event, the pieces, usage last when asked, `[DONE]`."""
    completion_id, created = chat_completion_id(), int(time.time())

    def event(chunk: Chunk, delta: ChunkDelta, finish: str | None) -> bytes:
        return sse.event(ChatCompletionChunk(
            id=completion_id, object="chat.completion.chunk", created=created, model=chunk.model,
            choices=[ChunkChoice(index=0, delta=delta, logprobs=None, finish_reason=finish)]))

    yield event(stream.first, {"role": "assistant", "content": ""}, None)
    usage = None
    chunk = stream.first
    async for chunk in stream:
        delta: ChunkDelta = {}
        if chunk.reasoning:
            delta["reasoning"] = chunk.reasoning  # Groq's field: never mixed into content
        if chunk.text:
            delta["content"] = chunk.text
        if chunk.tool_calls:
            delta["tool_calls"] = list(chunk.tool_calls)
        if delta or chunk.finish_reason:
            yield event(chunk, delta, chunk.finish_reason)
        usage = chunk.usage or usage
    if include_usage and usage is not None:
        yield sse.event(ChatCompletionChunk(id=completion_id, object="chat.completion.chunk", created=created,
                                            model=chunk.model, choices=[], usage=usage_json(usage)))
    yield sse.DONE


def model_response(body: BaseModel, *, headers: dict[str, str] | None = None,
                   status_code: int = 200) -> Response:
    """A wire model sent as its JSON bytes, serialized once by pydantic-core."""
    return Response(dump(body), status_code=status_code, headers=headers, media_type="application/json")
