"""The seed's endpoints: `/chat`, `/local-chat`, `/healthz` (`/current-key` is in routes_admin)."""
# No `from __future__ import annotations` here: dependency-injector reads the
# Annotated[..., Depends(Provide[...])] markers from the live signature.


from typing import Annotated, Any

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Response
from fastapi.responses import StreamingResponse

from app.domain.chat import ChatService, Route
from app.entrypoints.http.auth import require_client_key
from app.entrypoints.http.protocol import PromptChatRequest, chat_chunks_to_sse, completion_to_wire
from app.entrypoints.http.streaming import stream_response

router = APIRouter()


async def _answer(body: PromptChatRequest, chat: ChatService, response: Response,
                  route: Route) -> dict[str, Any] | StreamingResponse:
    request = body.to_domain()
    if body.stream:
        stream = await chat.open_stream(request, route=route)
        return stream_response(stream, chat_chunks_to_sse(stream, include_usage=True))
    completion = await chat.complete(request, route=route)
    response.headers["x-provider"] = completion.provider
    return completion_to_wire(completion)


@router.post("/chat", dependencies=[Depends(require_client_key)], response_model=None,
             summary="Chat through Groq (the local model when Groq is unavailable)")
@inject
async def chat(
    body: PromptChatRequest,
    response: Response,
    service: Annotated[ChatService, Depends(Provide["chat_service"])],
) -> dict[str, Any] | StreamingResponse:
    """Answer one prompt as an OpenAI `chat.completion`."""
    return await _answer(body, service, response, "auto")


@router.post("/local-chat", dependencies=[Depends(require_client_key)], response_model=None,
             summary="Chat with the local CPU model")
@inject
async def local_chat(
    body: PromptChatRequest,
    response: Response,
    service: Annotated[ChatService, Depends(Provide["chat_service"])],
) -> dict[str, Any] | StreamingResponse:
    """Answer one prompt with the local model."""
    return await _answer(body, service, response, "local")


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """200 while the process is up."""
    return {"status": "ok"}
