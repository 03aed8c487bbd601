"""Responses streaming: an opened stream as `event:` + `data:` server-sent events.

The order the SDKs and Codex parse: `response.created`, `response.in_progress`,
the output items' events, then `response.completed` (`response.incomplete` at
the token limit). A failure after the stream began ends it with
`response.failed`, never with a completion that did not happen.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi.responses import StreamingResponse

from app.domain.errors import DomainError
from app.domain.streams import ChunkStream
from app.entrypoints.http import sse
from app.entrypoints.http.errors import domain_error_response
from app.entrypoints.http.responses.output import ResponseOutput
from app.entrypoints.http.responses.wire import ResponseHeader
from app.entrypoints.http.streaming import ClosingStreamingResponse

log = logging.getLogger(__name__)

OnFinished = Callable[[dict[str, Any], ResponseOutput], None]


def sse_event(event: dict[str, Any]) -> bytes:
    """One server-sent event named after its type."""
    return sse.event(event, name=event["type"])


def failure(exc: BaseException) -> dict[str, Any]:
    """The `error` of a failed response (code and message, as in the error envelope)."""
    if isinstance(exc, DomainError):
        error = domain_error_response(exc)[1]["error"]
        return {"code": error["code"] or "server_error", "message": error["message"]}
    return {"code": "server_error", "message": "Internal error while streaming."}


async def response_events(stream: ChunkStream, header: ResponseHeader,
                          on_finished: OnFinished) -> AsyncIterator[bytes]:
    """The events of one response; `on_finished` gets the final response before it is sent."""
    numbers = itertools.count()

    def frame(event: dict[str, Any]) -> str:
        return sse_event({"type": event["type"], "sequence_number": next(numbers), **event})

    yield frame({"type": "response.created", "response": header.snapshot("in_progress")})
    yield frame({"type": "response.in_progress", "response": header.snapshot("in_progress")})
    output = ResponseOutput()
    try:
        async for chunk in stream:
            for event in output.add(chunk):
                yield frame(event)
    except Exception as exc:
        log.warning("responses: stream failed after it started: %s", type(exc).__name__)
        failed = header.snapshot("failed", output=output.items("incomplete"), usage=output.usage,
                                 error=failure(exc))
        yield frame({"type": "response.failed", "response": failed})
        return
    for event in output.finish():
        yield frame(event)
    final = output.response(header)
    on_finished(final, output)
    yield frame({"type": f"response.{final['status']}", "response": final})


def events_response(stream: ChunkStream, events: AsyncIterator[bytes]) -> StreamingResponse:
    """Send `events` as SSE; the stream is closed however sending ends (a client gone mid-answer too)."""
    return ClosingStreamingResponse(stream, events, media_type="text/event-stream",
                                    headers={"x-provider": stream.provider, "Cache-Control": "no-cache",
                                             "X-Accel-Buffering": "no"})
