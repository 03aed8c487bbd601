"""Wire model of the seed's `/chat` and `/local-chat` body (they answer a `chat.completion`)."""

from __future__ import annotations

from pydantic import Field, StrictBool, StrictStr, field_validator

from app.domain.models import ChatMessage, ChatRequest
from app.entrypoints.http.wire import WireModel


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
