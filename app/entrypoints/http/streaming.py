"""Server-sent-event responses that fail cleanly before and after the first byte."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from fastapi.responses import StreamingResponse
from starlette.types import Send

from app.domain.models import Chunk
from app.entrypoints.http.errors import sse_error_event

log = logging.getLogger(__name__)

SseEncoder = Callable[[Chunk, AsyncIterator[Chunk]], AsyncIterator[str]]
CLOSE_TIMEOUT_SECONDS = 5.0


async def close_quietly(iterator: Any) -> None:
    """Close an async generator even while the request is being cancelled (bounded)."""
    with anyio.move_on_after(CLOSE_TIMEOUT_SECONDS, shield=True):
        await iterator.aclose()


class ClosingStreamingResponse(StreamingResponse):
    """Closes its body when sending ends in any way, so a client gone mid-stream stops the work.

    (Starlette leaves a body suspended at `yield` to the garbage collector when
    a send fails; closing it here releases the upstream request at once.)
    """

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            await close_quietly(self.body_iterator)


async def stream_response(chunks: AsyncIterator[Chunk], encode: SseEncoder) -> StreamingResponse:
    """Wait for the first chunk (errors before it become normal HTTP errors), then stream.

    An error after the first byte becomes an error event and a clean end of
    stream; a client disconnect closes `chunks`, which stops the work behind it.
    """
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = Chunk(model="", provider="", finish_reason="stop")
    except BaseException:
        await close_quietly(chunks)
        raise

    async def body() -> AsyncIterator[str]:
        try:
            async for event in encode(first, chunks):
                yield event
        except Exception as exc:
            log.warning("stream failed after it started: %s", type(exc).__name__)
            yield sse_error_event(exc)
            yield "data: [DONE]\n\n"
        finally:
            await close_quietly(chunks)

    return ClosingStreamingResponse(body(), media_type="text/event-stream",
                                    headers={"x-provider": first.provider, "Cache-Control": "no-cache",
                                             "X-Accel-Buffering": "no"})
