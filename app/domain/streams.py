"""An opened stream of chunks: open waits for the first chunk, then the caller only reads and closes.

Every provider's `open_stream` returns a `ChunkStream` once its first chunk is
in hand and raises the provider's error before that, so retries, failover and
the HTTP status are decided by an ordinary try/except around the open.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable

from app.domain.errors import UpstreamUnavailable
from app.domain.models import Chunk


class ChunkStream:
    """The chunks of one answer, the first already received; closing it stops the work behind it.

    Iterating yields the first chunk, then the rest. `aclose()` is idempotent and
    must be called on every path (an `async with` block does it).
    """

    def __init__(self, first: Chunk, rest: AsyncGenerator[Chunk, None], *,
                 closes: ChunkStream | None = None) -> None:
        self.first = first
        self._rest = rest
        self._closes = closes  # the stream this one wraps, closed with it
        self._first_pending = True
        self._closed = False
        self._ended = False

    def wrapped(self, rest: Callable[[AsyncGenerator[Chunk, None]], AsyncGenerator[Chunk, None]]) -> ChunkStream:
        """This stream with `rest(chunks after the first)` in place of them; closing it closes this one.

        For a layer that watches or transforms a stream it passes on (retries count a
        break mid-stream, say) without peeling the first chunk off and gluing it back.
        `rest` reads the chunks to their end, or closes them when it stops early: a stream
        that ended is `finished`, and is closed without waiting on anything.
        """
        return ChunkStream(self.first, rest(self._rest), closes=self)

    @property
    def provider(self) -> str:
        """The provider that answers (known from the first chunk)."""
        return self.first.provider

    @property
    def model(self) -> str:
        """The model that answers (known from the first chunk)."""
        return self.first.model

    @property
    def finished(self) -> bool:
        """Read to its end or closed: the work behind it is over, and closing it waits on nothing."""
        return self._ended or self._closed

    def __aiter__(self) -> AsyncIterator[Chunk]:
        return self

    async def __anext__(self) -> Chunk:
        if self._first_pending:
            self._first_pending = False
            return self.first
        if self._closed:
            raise StopAsyncIteration
        try:
            return await self._rest.__anext__()
        except StopAsyncIteration:
            self._ended = True
            raise

    async def aclose(self) -> None:
        """Stop the work behind the stream and release what it holds."""
        if not self._closed:
            self._closed = True
            try:
                await self._rest.aclose()
            finally:
                if self._closes is not None:
                    await self._closes.aclose()

    async def __aenter__(self) -> ChunkStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def open_chunks(chunks: AsyncGenerator[Chunk, None]) -> ChunkStream:
    """Open a stream from an async generator: wait for its first chunk, or raise its error.

    The generator is closed when it fails before its first chunk. A generator that
    ends without any chunk is an upstream failure (an answer must at least finish).
    """
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        await chunks.aclose()
        raise UpstreamUnavailable("the stream ended before its first chunk") from None
    except BaseException:
        await chunks.aclose()
        raise
    return ChunkStream(first, chunks)
