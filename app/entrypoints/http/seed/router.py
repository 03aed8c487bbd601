"""The seed's `POST /chat` (Groq, the local model when Groq is unavailable) and `POST /local-chat`."""
# No `from __future__ import annotations` here: dependency-injector reads the
# Annotated[..., Depends(Provide[...])] markers from the live signature.

from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Response

from app.domain.chat import ChatService
from app.entrypoints.http.answer import CHAT, GENERATION_RESPONSES, answer
from app.entrypoints.http.auth import require_client_key
from app.entrypoints.http.json_codec import StrictJSONRoute
from app.entrypoints.http.limits import RequestLimits, request_limits
from app.entrypoints.http.seed.wire import PromptChatRequest
from app.entrypoints.http.wire import ChatCompletion

router = APIRouter(route_class=StrictJSONRoute, dependencies=[Depends(require_client_key)])


@router.post("/chat", response_model=ChatCompletion, responses=GENERATION_RESPONSES,
             summary="Chat through Groq (the local model when Groq is unavailable)")
@inject
async def chat(
    body: PromptChatRequest,
    service: Annotated[ChatService, Depends(Provide["chat_service"])],
    limits: Annotated[RequestLimits, Depends(request_limits)],
) -> Response:
    """Answer one prompt as an OpenAI `chat.completion`."""
    return await answer(service, body.to_domain(), rendering=CHAT, stream=body.stream, include_usage=True,
                        limits=limits, prompt_param="prompt")


@router.post("/local-chat", response_model=ChatCompletion, responses=GENERATION_RESPONSES,
             summary="Chat with the local CPU model")
@inject
async def local_chat(
    body: PromptChatRequest,
    service: Annotated[ChatService, Depends(Provide["chat_service"])],
    limits: Annotated[RequestLimits, Depends(request_limits)],
) -> Response:
    """Answer one prompt with the local model."""
    return await answer(service, body.to_domain(), rendering=CHAT, stream=body.stream, include_usage=True,
                        limits=limits, route="local", prompt_param="prompt")
