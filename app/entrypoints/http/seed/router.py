"""The seed's `POST /chat` (Groq, the local model when Groq is unavailable) and `POST /local-chat`."""
# No `from __future__ import annotations` here: FastAPI reads the
# Annotated[..., Depends(...)] markers from the live signature.

from fastapi import APIRouter, Depends, Request, Response

from app.entrypoints.http.answer import CHAT, GENERATION_RESPONSES, answer
from app.entrypoints.http.auth import require_client_key
from app.entrypoints.http.json_route import StrictJSONRoute
from app.entrypoints.http.seed.wire import PromptChatRequest
from app.entrypoints.http.wire import ChatCompletion

router = APIRouter(route_class=StrictJSONRoute, dependencies=[Depends(require_client_key)],
                   responses=GENERATION_RESPONSES)


@router.post("/chat", response_model=ChatCompletion,
             summary="Chat through Groq (the local model when Groq is unavailable)")
async def chat(request: Request, body: PromptChatRequest) -> Response:
    """Answer one prompt as an OpenAI `chat.completion`."""
    return await answer(request, body, rendering=CHAT)


@router.post("/local-chat", response_model=ChatCompletion, summary="Chat with the local CPU model")
async def local_chat(request: Request, body: PromptChatRequest) -> Response:
    """Answer one prompt with the local model."""
    return await answer(request, body, rendering=CHAT, route="local")
