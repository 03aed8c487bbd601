"""`POST /v1/completions`, also at the root (Continue calls `{apiBase}/completions` for autocomplete)."""
# No `from __future__ import annotations` here: dependency-injector reads the
# Annotated[..., Depends(Provide[...])] markers from the live signature.

from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Response

from app.domain.chat import ChatService
from app.entrypoints.http.answer import GENERATION_RESPONSES, Rendering, answer
from app.entrypoints.http.auth import require_client_key
from app.entrypoints.http.completions.wire import CompletionRequest, TextCompletion, text_events
from app.entrypoints.http.json_codec import StrictJSONRoute
from app.entrypoints.http.limits import RequestLimits, request_limits

router = APIRouter(route_class=StrictJSONRoute, dependencies=[Depends(require_client_key)],
                   tags=["OpenAI-compatible"])

TEXT = Rendering(whole=TextCompletion.of, events=text_events)


@router.post("/v1/completions", response_model=TextCompletion, responses=GENERATION_RESPONSES,
             summary="Legacy prompt completion (autocomplete)")
@router.post("/completions", response_model=TextCompletion, include_in_schema=False)
@inject
async def completions(
    body: CompletionRequest,
    service: Annotated[ChatService, Depends(Provide["chat_service"])],
    limits: Annotated[RequestLimits, Depends(request_limits)],
) -> Response:
    """A `text_completion` for a raw prompt, streamed when `stream` is true."""
    return await answer(service, body.to_domain(), rendering=TEXT, stream=body.stream,
                        include_usage=body.include_usage, limits=limits, prompt_param="prompt")
