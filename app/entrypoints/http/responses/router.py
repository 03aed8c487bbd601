"""The Responses API over HTTP, under `/v1` and at the root (clients join paths to their base URL)."""
# No `from __future__ import annotations` here: dependency-injector reads the
# Annotated[..., Depends(Provide[...])] markers from the live signature.


from typing import Annotated, Any

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Path, Response
from fastapi.responses import StreamingResponse

from app.domain.chat import ChatService
from app.domain.response_store import ResponseStore
from app.entrypoints.http.auth import require_client_key
from app.entrypoints.http.errors import ERROR_RESPONSES
from app.entrypoints.http.json_route import StrictJSONRoute
from app.entrypoints.http.sse import EVENT_SCHEMA
from app.entrypoints.http.responses.events import events_response
from app.entrypoints.http.responses.serving import ResponsesServing
from app.entrypoints.http.responses.wire import ResponsesRequest, deleted_to_wire

router = APIRouter(route_class=StrictJSONRoute, dependencies=[Depends(require_client_key)],
                   responses=ERROR_RESPONSES, tags=["Responses API"])

ResponseId = Annotated[str, Path(description="A response id (`resp_…`) this server stored.")]


@inject
async def serving(
    service: Annotated[ChatService, Depends(Provide["chat_service"])],
    store: Annotated[ResponseStore, Depends(Provide["response_store"])],
) -> ResponsesServing:
    """The Responses serving for one request."""
    return ResponsesServing(service, store)


Serving = Annotated[ResponsesServing, Depends(serving)]


# Both bodies of its 200: the response object, or with `stream: true` Responses events.
CREATED: dict[int | str, dict[str, Any]] = {
    200: {"description": "The `response` object, or with `stream: true` server-sent Responses events "
                         "(`event: response.created` ... `response.completed`).",
          "content": {"application/json": {}, "text/event-stream": {"schema": EVENT_SCHEMA}}},
}


@router.post("/v1/responses", response_model=None, responses=CREATED,
             summary="Create a response (OpenAI Responses API)")
@router.post("/responses", response_model=None, responses=CREATED, include_in_schema=False)
async def create_response(body: ResponsesRequest, response: Response,
                          responses: Serving) -> dict[str, Any] | StreamingResponse:
    """A `response` object, or Responses events when `stream` is true."""
    if body.stream:
        stream, events = await responses.open_stream(body)
        return events_response(stream, events)
    answered = await responses.create(body)
    response.headers["x-provider"] = answered.provider
    return answered.body


@router.get("/v1/responses/{response_id}", summary="A stored response")
@router.get("/responses/{response_id}", include_in_schema=False)
async def get_response(response_id: ResponseId, responses: Serving) -> dict[str, Any]:
    """The stored response object; 404 when unknown, expired or deleted."""
    return responses.find(response_id)


@router.delete("/v1/responses/{response_id}", summary="Delete a stored response")
@router.delete("/responses/{response_id}", include_in_schema=False)
async def delete_response(response_id: ResponseId, responses: Serving) -> dict[str, Any]:
    """Forget a stored response; 404 when there is none."""
    responses.delete(response_id)
    return deleted_to_wire(response_id)
