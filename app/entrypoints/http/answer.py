"""The one way a generation route answers: checked, completed or streamed, sent with `x-provider`.

The seed's `/chat` and `/local-chat`, chat completions and legacy completions
differ only in their wire shapes (`Rendering`) and in the name of the field
that carries the prompt.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, NamedTuple, Protocol

from fastapi import Request, Response
from pydantic import BaseModel

from app.domain.chat import Route
from app.domain.errors import DomainError
from app.domain.models import ChatRequest, Completion
from app.domain.streams import ChunkStream
from app.entrypoints.http.deps import chat_service, request_limits
from app.entrypoints.http.disconnect import ClientDisconnected, unless_disconnected
from app.entrypoints.http.errors import ERROR_RESPONSES
from app.entrypoints.http.limits import check_prompt_size
from app.entrypoints.http.sse import EVENT_SCHEMA
from app.entrypoints.http.streaming import stream_response
from app.entrypoints.http.wire import ChatCompletion, chat_events, model_response

log = logging.getLogger(__name__)


class Rendering(NamedTuple):
    """How a route's answer goes on the wire: a whole object, or SSE events over a stream."""

    whole: Callable[[Completion], BaseModel]
    events: Callable[[ChunkStream, bool], AsyncIterator[bytes]]


CHAT = Rendering(whole=ChatCompletion.of, events=chat_events)

# What a generation route declares: both bodies of its 200 (JSON, or SSE when `stream` is
# true) and the error envelope.
GENERATION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The whole answer, or with `stream: true` server-sent events ending in "
                         "`data: [DONE]`. Header `x-provider` says who answered (`groq` or `local`).",
          "content": {"text/event-stream": {"schema": EVENT_SCHEMA}}},
    **ERROR_RESPONSES,
}


def naming(exc: DomainError, param: str) -> DomainError:
    """A copy of `exc` naming `param` (the original may be raised again elsewhere: it is left alone)."""
    renamed = type(exc).__new__(type(exc), *exc.args)
    renamed.__dict__.update(exc.__dict__)
    renamed.param = param
    return renamed


class GenerationBody(Protocol):
    """A request body a generation route answers."""

    prompt_param: ClassVar[str]  # the body field holding the prompt, named by errors about it
    stream: bool

    @property
    def include_usage(self) -> bool:
        """Whether a stream ends with a usage event."""

    def to_domain(self) -> ChatRequest:
        """The domain request."""


async def answer(http: Request, body: GenerationBody, *, rendering: Rendering,
                 route: Route = "auto") -> Response:
    """Answer `body` whole or as a stream; errors name `body.prompt_param` where the domain says messages.

    The chat service and the limits are read from the app here, not declared as route
    dependencies: each FastAPI dependency costs tens of microseconds a request (issue 14).

    The work is cancelled if the client leaves (`disconnect.py`) before the answer, or a stream's
    first chunk, is ready; once a stream is sent, a failed send ends it.
    """
    service, limits = await chat_service(http), await request_limits(http)
    scope, receive = http.scope, http.receive
    request = body.to_domain()
    check_prompt_size(request, limits, param=body.prompt_param)
    try:
        if body.stream:
            opened = await unless_disconnected(scope, receive, service.open_stream(request, route=route))
        else:
            completion = await unless_disconnected(scope, receive, service.complete(request, route=route))
    except ClientDisconnected:
        return Response(status_code=499)  # nobody reads it: the status is for the access log
    except DomainError as exc:
        if body.prompt_param != "messages" and exc.param is not None and exc.param.startswith("messages"):
            raise naming(exc, body.prompt_param) from exc  # the domain counts a prompt as messages
        raise
    provider = opened.provider if body.stream else completion.provider
    if provider == "local" and request.tools:
        # The local model calls no tools (JSON answers it constrains): it answers in plain text.
        log.info("local model answered without tools (not supported locally)")
    if body.stream:
        return stream_response(opened, rendering.events(opened, body.include_usage))
    return model_response(rendering.whole(completion), headers={"x-provider": provider})
