"""Wire shapes of the Responses API: the request body, and the response object sent back.

Real clients send fields we don't use (Codex: `include`, `prompt_cache_key`,
`client_metadata` ...): they are accepted, and ignored with a debug line.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator

from app.domain.models import Usage
from app.entrypoints.http.ids import random_hex
from app.entrypoints.http.wire import WireModel

log = logging.getLogger(__name__)

# Accepted so clients work; they change nothing here (echoed in the answer when the API does).
IGNORED_FIELDS = ("include", "reasoning", "prompt_cache_key", "client_metadata", "service_tier", "truncation")
# Part of the request that the response object repeats.
ECHOED_FIELDS = ("instructions", "max_output_tokens", "metadata", "parallel_tool_calls",
                 "previous_response_id", "reasoning", "service_tier", "store", "temperature",
                 "top_p", "truncation", "user")

Status = Literal["in_progress", "completed", "incomplete", "failed"]


class TextOptions(WireModel):
    """`text`: only `format` means something here (`verbosity` is ignored)."""

    format: dict[str, Any] | None = None


class ResponsesRequest(WireModel):
    """Body of `POST /v1/responses`."""

    model: str | None = None
    input: str | list[dict[str, Any]] = Field(description="Text, or a list of input items.")
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextOptions | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = None
    include: list[str] | None = None
    reasoning: dict[str, Any] | None = None
    prompt_cache_key: str | None = None
    client_metadata: dict[str, Any] | None = None
    service_tier: str | None = None
    truncation: str | None = None
    conversation: Any = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
        if not value:
            raise ValueError("must be a non-empty string or a non-empty list of items")
        return value

    @field_validator("conversation")
    @classmethod
    def _no_conversation_objects(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError("conversation objects are not supported here; use previous_response_id")
        return value

    def note_ignored(self) -> None:
        """One debug line naming the fields that were sent but change nothing."""
        sent = [name for name in IGNORED_FIELDS if getattr(self, name) is not None]
        if sent:
            log.debug("responses: accepted and ignored %s", sent)

    def echoed(self) -> dict[str, Any]:
        """The request fields a response object repeats."""
        echo = {name: getattr(self, name) for name in ECHOED_FIELDS}
        echo["metadata"] = self.metadata or {}
        echo["text"] = {"format": (self.text.format if self.text and self.text.format else {"type": "text"})}
        return echo


def new_id(prefix: str) -> str:
    """An id in OpenAI's form for responses (`resp`), messages (`msg`), function calls (`fc`)."""
    return f"{prefix}_{random_hex()}"


def usage_to_wire(usage: Usage) -> dict[str, Any]:
    """Domain usage as the Responses API's usage object."""
    return {"input_tokens": usage.prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage.completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage.total_tokens}


@dataclass(frozen=True, slots=True)
class ResponseHeader:
    """What every snapshot of one response repeats: its id, creation time, model and the echoed request."""

    id: str
    created_at: int
    model: str
    echo: dict[str, Any]
    tools: list[dict[str, Any]]
    tool_choice: Any

    @classmethod
    def start(cls, *, model: str, echo: dict[str, Any], tools: list[dict[str, Any]],
              tool_choice: Any) -> ResponseHeader:
        """A new response, created now."""
        return cls(id=new_id("resp"), created_at=int(time.time()), model=model, echo=echo, tools=tools,
                   tool_choice=tool_choice)

    def snapshot(self, status: Status, *, output: list[dict[str, Any]] | None = None,
                 usage: Usage | None = None, error: dict[str, Any] | None = None,
                 incomplete_reason: str | None = None) -> dict[str, Any]:
        """The `response` object in `status`."""
        return {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status,
            "background": False, "error": error,
            "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
            "model": self.model, "output": output or [],
            "tools": self.tools, "tool_choice": self.tool_choice or "auto",
            "usage": usage_to_wire(usage) if usage is not None else None,
            **self.echo,
            "parallel_tool_calls": self.echo.get("parallel_tool_calls") is not False,
        }


def deleted_to_wire(response_id: str) -> dict[str, Any]:
    """The answer to `DELETE /v1/responses/{id}`."""
    return {"id": response_id, "object": "response", "deleted": True}
