"""`POST /v1/completions`, also at the root (Continue calls `{apiBase}/completions` for autocomplete)."""
# No `from __future__ import annotations` here: FastAPI reads the
# Annotated[..., Depends(...)] markers from the live signature.

from fastapi import APIRouter, Depends, Request, Response

from app.entrypoints.http.answer import GENERATION_RESPONSES, Rendering, answer
from app.entrypoints.http.auth import require_client_key
from app.entrypoints.http.completions.wire import CompletionRequest, TextCompletion, text_events
from app.entrypoints.http.json_route import StrictJSONRoute

router = APIRouter(route_class=StrictJSONRoute, dependencies=[Depends(require_client_key)],
                   responses=GENERATION_RESPONSES, tags=["OpenAI-compatible"])

TEXT = Rendering(whole=TextCompletion.of, events=text_events)


@router.post("/v1/completions", response_model=TextCompletion,
             summary="Legacy prompt completion (autocomplete)")
@router.post("/completions", response_model=TextCompletion, include_in_schema=False)
async def completions(request: Request, body: CompletionRequest) -> Response:
    """A `text_completion` for a raw prompt, streamed when `stream` is true."""
    return await answer(request, body, rendering=TEXT)
