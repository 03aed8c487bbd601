"""Wire models of `POST /v1/chat/completions`, mapped to the domain request.

The answer (`chat.completion` and its chunks) is shared with the seed's `/chat`,
so it lives in `app.entrypoints.http.wire`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from app.domain.errors import InvalidRequest
from app.domain.models import ChatMessage, ChatRequest
from app.entrypoints.http.content import CHAT_TEXT_PARTS, text_of_parts
from app.entrypoints.http.wire import GenerationParams, WireModel

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


class ChatCompletionRequest(GenerationParams):
    """Body of `POST /v1/chat/completions`."""

    prompt_param: ClassVar[str] = "messages"
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
                           **self.domain_params())


def _message(index: int, message: WireMessage) -> ChatMessage:
    """A wire message as a domain message: text parts joined, other parts refused."""
    param = f"messages[{index}].content"
    content = (text_of_parts(message.content, param, text_parts=CHAT_TEXT_PARTS)
               if isinstance(message.content, list) else message.content)
    if content is None:
        if message.role != "assistant":
            raise InvalidRequest(f"Messages with role `{message.role}` need content.", param=param)
        content = ""
    return ChatMessage(role="system" if message.role == "developer" else message.role, content=content,
                       name=message.name, tool_call_id=message.tool_call_id,
                       tool_calls=tuple(message.tool_calls) if message.tool_calls else None)
