"""Wire models of the model list and of one model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from app.domain.chat import ModelInfo
from app.entrypoints.http.wire import omitted_if_none


class Model(BaseModel):
    """One OpenAI model object; `owned_by` says which side serves it (`groq` or `local`)."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str
    context_window: int | None = omitted_if_none(description="Context length in tokens, when the upstream says.")

    @classmethod
    def of(cls, model: ModelInfo) -> Model:
        """The wire form of a model the service offers."""
        return cls(id=model.id, owned_by=model.provider, context_window=model.context_window)


class ModelList(BaseModel):
    """OpenAI's model list: Groq's configured models first (when a key is set), then the local one."""

    object: Literal["list"] = "list"
    data: list[Model]

    @classmethod
    def of(cls, models: list[ModelInfo]) -> ModelList:
        """The wire list of the models the service offers."""
        return cls(data=[Model.of(m) for m in models])
