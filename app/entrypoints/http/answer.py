"""The one way a generation route answers: checked, completed or streamed, sent with `x-provider`.

The seed's `/chat` and `/local-chat`, chat completions and legacy completions
differ only in their wire shapes (`Rendering`) and in the name of the field
that carries the prompt.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple

from fastapi import Response
from pydantic import BaseModel

from app.domain.chat import ChatService, Route
from app.domain.errors import DomainError
from app.domain.models import ChatRequest, Completion
from app.domain.streams import ChunkStream
from app.entrypoints.http.errors import ERROR_RESPONSES
from app.entrypoints.http.limits import RequestLimits, check_prompt_size
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
          "content": {"text/event-stream": {"schema": {"type": "string"}}}},
    **ERROR_RESPONSES,
}


def naming(exc: DomainError, param: str) -> DomainError:
    """A copy of `exc` naming `param` (the original may be raised again elsewhere: it is left alone)."""
    renamed = type(exc).__new__(type(exc), *exc.args)
    renamed.__dict__.update(exc.__dict__)
    renamed.param = param
    return renamed


async def answer(service: ChatService, request: ChatRequest, *, rendering: Rendering, stream: bool,
                 include_usage: bool, limits: RequestLimits, route: Route = "auto",
                 prompt_param: str = "messages") -> Response:
    """Answer `request` whole or as a stream; errors name `prompt_param` where the domain says messages."""
    check_prompt_size(request, limits, param=prompt_param)
    try:
        if stream:
            opened = await service.open_stream(request, route=route)
        else:
            completion = await service.complete(request, route=route)
    except DomainError as exc:
        if prompt_param != "messages" and exc.param is not None and exc.param.startswith("messages"):
            raise naming(exc, prompt_param) from exc  # the domain counts a prompt as messages
        raise
    provider = opened.provider if stream else completion.provider
    if provider == "local" and (request.tools or request.response_format):
        # The local model has no tool calling or JSON mode: it answers in plain text.
        log.info("local model answered without tools/response_format (not supported locally)")
    if stream:
        return stream_response(opened, rendering.events(opened, include_usage))
    return model_response(rendering.whole(completion), headers={"x-provider": provider})
