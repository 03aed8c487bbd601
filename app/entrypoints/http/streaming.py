"""Server-sent-event responses that fail cleanly before and after the first byte."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from fastapi.responses import StreamingResponse

from app.domain.models import Chunk
from app.entrypoints.http.errors import sse_error_event

log = logging.getLogger(__name__)

SseEncoder = Callable[[Chunk, AsyncIterator[Chunk]], AsyncIterator[str]]


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
        await chunks.aclose()
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
            await chunks.aclose()

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"x-provider": first.provider, "Cache-Control": "no-cache",
                                      "X-Accel-Buffering": "no"})
