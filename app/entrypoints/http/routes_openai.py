"""The OpenAI-compatible API, under `/v1` and at the root (Continue joins paths to its apiBase)."""
# No `from __future__ import annotations` here: dependency-injector reads the
# Annotated[..., Depends(Provide[...])] markers from the live signature.


import logging
from typing import Annotated, Any

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Path, Response
from fastapi.responses import StreamingResponse

from app.domain.chat import ChatService
from app.domain.errors import ModelNotFound
from app.domain.models import ChatRequest, Completion
from app.entrypoints.http.auth import require_client_key
from app.entrypoints.http.openai_protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    model_to_wire,
    models_to_wire,
    text_chunks_to_sse,
    text_completion_to_wire,
)
from app.entrypoints.http.protocol import chat_chunks_to_sse, completion_to_wire
from app.entrypoints.http.streaming import stream_response

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(require_client_key)], tags=["OpenAI-compatible"])


def _note_ignored(request: ChatRequest, provider: str) -> None:
    # The local model has no tool calling or JSON mode: it answers in plain text.
    if provider == "local" and (request.tools or request.response_format):
        log.info("local model answered without tools/response_format (not supported locally)")


def _answered(completion: Completion, request: ChatRequest, response: Response) -> None:
    response.headers["x-provider"] = completion.provider
    _note_ignored(request, completion.provider)


@router.post("/v1/chat/completions", response_model=None, summary="Chat completion (OpenAI-compatible)")
@router.post("/chat/completions", response_model=None, include_in_schema=False)
@inject
async def chat_completions(
    body: ChatCompletionRequest,
    response: Response,
    service: Annotated[ChatService, Depends(Provide["chat_service"])],
) -> dict[str, Any] | StreamingResponse:
    """A `chat.completion`, or `chat.completion.chunk` events when `stream` is true."""
    request = body.to_domain()
    if body.stream:
        stream = await service.open_stream(request)
        _note_ignored(request, stream.provider)
        return stream_response(stream, chat_chunks_to_sse(stream, include_usage=body.include_usage))
    completion = await service.complete(request)
    _answered(completion, request, response)
    return completion_to_wire(completion)


@router.post("/v1/completions", response_model=None, summary="Legacy prompt completion (autocomplete)")
@router.post("/completions", response_model=None, include_in_schema=False)
@inject
async def completions(
    body: CompletionRequest,
    response: Response,
    service: Annotated[ChatService, Depends(Provide["chat_service"])],
) -> dict[str, Any] | StreamingResponse:
    """A `text_completion` for a raw prompt, streamed when `stream` is true."""
    request = body.to_domain()
    if body.stream:
        stream = await service.open_stream(request)
        return stream_response(stream, text_chunks_to_sse(stream, include_usage=body.include_usage))
    completion = await service.complete(request)
    _answered(completion, request, response)
    return text_completion_to_wire(completion)


@router.get("/v1/models", summary="Models a client may name")
@router.get("/models", include_in_schema=False)
@inject
async def list_models(
    service: Annotated[ChatService, Depends(Provide["chat_service"])],
) -> dict[str, Any]:
    """The configured Groq models (when a key is set) and the local model."""
    return models_to_wire(service.models())


@router.get("/v1/models/{model_id:path}", summary="One model")
@router.get("/models/{model_id:path}", include_in_schema=False)
@inject
async def get_model(
    model_id: Annotated[str, Path(description="Model id; may contain `/`.")],
    service: Annotated[ChatService, Depends(Provide["chat_service"])],
) -> dict[str, Any]:
    """The model object, or 404 `model_not_found`."""
    for model in service.models():
        if model.id == model_id:
            return model_to_wire(model)
    raise ModelNotFound(f"The model `{model_id}` does not exist.", param="model")
