"""`POST /v1/chat/completions`, also at the root (Continue joins paths to its apiBase)."""
# No `from __future__ import annotations` here: FastAPI reads the
# Annotated[..., Depends(...)] markers from the live signature.

from fastapi import APIRouter, Depends, Request, Response

from app.entrypoints.http.answer import CHAT, GENERATION_RESPONSES, answer
from app.entrypoints.http.auth import require_client_key
from app.entrypoints.http.chat_completions.wire import ChatCompletionRequest
from app.entrypoints.http.json_route import StrictJSONRoute
from app.entrypoints.http.wire import ChatCompletion

router = APIRouter(route_class=StrictJSONRoute, dependencies=[Depends(require_client_key)],
                   responses=GENERATION_RESPONSES, tags=["OpenAI-compatible"])


@router.post("/v1/chat/completions", response_model=ChatCompletion,
             summary="Chat completion (OpenAI-compatible)")
@router.post("/chat/completions", response_model=ChatCompletion, include_in_schema=False)
async def chat_completions(request: Request, body: ChatCompletionRequest) -> Response:
    """A `chat.completion`, or `chat.completion.chunk` events when `stream` is true."""
    return await answer(request, body, rendering=CHAT)
