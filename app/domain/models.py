"""Domain types shared by services, ports and adapters."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "function_call", "error"]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A client API key and the window in which it is valid (UTC)."""

    value: str
    created_at: datetime
    expires_at: datetime

    def is_expired(self, now: datetime) -> bool:
        """True once `now` has reached the expiry instant."""
        return now >= self.expires_at


@dataclass(frozen=True, slots=True)
class KeyState:
    """What a key store holds: the current key and the one it replaced."""

    current: ApiKey
    previous: ApiKey | None = None


@dataclass(frozen=True, slots=True)
class KeyStoreHealth:
    """Whether client keys can be served: read now, and replaced when due. `message` names no secret."""

    serving: bool
    readable: bool
    writable: bool
    message: str


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a conversation, content already flattened to text."""

    role: Role
    content: str
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: tuple[dict[str, Any], ...] | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A provider-neutral generation request.

    `prompt` is set for raw (legacy) completions, where no chat template applies.
    """

    messages: tuple[ChatMessage, ...] = ()
    prompt: str | None = None
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    tools: tuple[dict[str, Any], ...] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    include_usage: bool = False
    # Reasoning models (Groq's gpt-oss, Qwen): passed on as given; other models ignore or refuse them.
    reasoning_effort: str | None = None
    reasoning_format: str | None = None
    include_reasoning: bool | None = None

    @property
    def requires_tool_call(self) -> bool:
        """True when the answer must be a tool call (`tool_choice` "required" or a named function)."""
        choice = self.tool_choice
        return choice == "required" or (isinstance(choice, dict) and choice.get("type") == "function")

    @property
    def requires_json(self) -> bool:
        """True when the answer must be JSON (`response_format` json_object or json_schema)."""
        kind = self.response_format.get("type") if isinstance(self.response_format, dict) else None
        return kind in ("json_object", "json_schema")

    def with_model(self, model: str | None) -> ChatRequest:
        """Copy with another target model (this one, when the model is the same: it is immutable)."""
        return self if model == self.model else replace(self, model=model)


@dataclass(frozen=True, slots=True)
class UpstreamModel:
    """A model an upstream says it serves; `context_window` in tokens when it says."""

    id: str
    context_window: int | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one generation."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished answer from a provider."""

    text: str | None
    model: str
    provider: str
    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=lambda: Usage(0, 0))
    tool_calls: tuple[dict[str, Any], ...] | None = None
    reasoning: str | None = None  # a reasoning model's thinking, apart from the answer's text


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a streamed answer.

    The last chunk of a stream carries `finish_reason` and, when known, `usage`
    (a usage-only chunk may follow it).
    """

    model: str
    provider: str
    text: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    tool_calls: tuple[dict[str, Any], ...] | None = None
    reasoning: str = ""  # a piece of a reasoning model's thinking, never part of `text`
