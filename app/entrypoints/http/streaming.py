"""Server-sent-event responses over an opened stream, closed on every path."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
from fastapi.responses import StreamingResponse
from starlette.types import Send

from app.domain.streams import ChunkStream
from app.entrypoints.http import sse
from app.entrypoints.http.errors import stream_error_body

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_SECONDS = 5.0


async def close_quietly(stream: ChunkStream) -> None:
    """Close a stream even while the request is being cancelled (bounded)."""
    with anyio.move_on_after(CLOSE_TIMEOUT_SECONDS, shield=True):
        await stream.aclose()


class ClosingStreamingResponse(StreamingResponse):
    """Closes its stream when sending ends in any way, so a client gone mid-stream stops the work.

    (Starlette leaves a body suspended at `yield` to the garbage collector when
    a send fails; closing the stream here releases the upstream request at once.)
    """

    def __init__(self, stream: ChunkStream, body: AsyncIterator[bytes], **kwargs: object) -> None:
        super().__init__(body, **kwargs)  # type: ignore[arg-type]
        self._stream = stream

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            await close_quietly(self._stream)


def stream_response(stream: ChunkStream, events: AsyncIterator[bytes]) -> StreamingResponse:
    """Send `events` (encoded from the opened `stream`) as SSE; `x-provider` names who answers.

    Errors before the stream opened were raised by the open as normal HTTP errors;
    an error after it becomes an error event and a clean end of stream.
    """

    async def body() -> AsyncIterator[bytes]:
        try:
            async for event in events:
                yield event
        except Exception as exc:
            log.warning("stream failed after it started: %s", type(exc).__name__)
            yield sse.event(stream_error_body(exc))
            yield sse.DONE
        finally:
            await close_quietly(stream)

    return ClosingStreamingResponse(stream, body(), media_type="text/event-stream",
                                    headers={"x-provider": stream.provider, "Cache-Control": "no-cache",
                                             "X-Accel-Buffering": "no"})
