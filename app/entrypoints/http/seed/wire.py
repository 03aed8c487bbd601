"""Wire model of the seed's `/chat` and `/local-chat` body (they answer a `chat.completion`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, StrictBool, StrictStr, field_validator

from app.domain.models import ChatMessage, ChatRequest
from app.entrypoints.http.wire import WireModel


class PromptChatRequest(WireModel):
    """Body of the seed's `/chat` and `/local-chat`."""

    prompt_param: ClassVar[str] = "prompt"
    prompt: StrictStr = Field(description="The user's message.")
    stream: StrictBool = False

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a non-empty string")
        return value

    @property
    def include_usage(self) -> bool:
        """The seed's streams always end with a usage event."""
        return True

    def to_domain(self) -> ChatRequest:
        """The domain request: one user message."""
        return ChatRequest(messages=(ChatMessage(role="user", content=self.prompt),))
