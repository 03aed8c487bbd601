"""ChunkStream's ending and closing, and `close_quietly`, which closes a stream on every path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import anyio

from app.domain.models import Chunk
from app.domain.streams import open_chunks
from app.entrypoints.http.streaming import close_quietly


class Source:
    """An answer's chunks, recording whether the work behind them ran its cleanup."""

    def __init__(self, words: int) -> None:
        self.words = words
        self.cleaned_up = False

    async def chunks(self) -> AsyncGenerator[Chunk, None]:
        try:
            for i in range(self.words):
                yield Chunk(model="m", provider="p", text=f"w{i}")
        finally:
            await asyncio.sleep(0)  # cleanup that waits, as releasing a connection does
            self.cleaned_up = True


async def passed_on(chunks: AsyncGenerator[Chunk, None]) -> AsyncGenerator[Chunk, None]:
    async for chunk in chunks:
        yield chunk


async def test_a_stream_read_to_its_end_is_finished_and_closes_with_the_one_it_wraps() -> None:
    source = Source(3)
    inner = await open_chunks(source.chunks())
    stream = inner.wrapped(passed_on)

    texts = []
    async for chunk in stream:
        texts.append(chunk.text)
        assert not stream.finished
    assert texts == ["w0", "w1", "w2"]
    assert stream.finished and source.cleaned_up

    await close_quietly(stream)
    assert inner.finished  # closed with the stream that wraps it


async def test_a_stream_left_midway_is_not_finished_and_is_closed_while_its_request_is_cancelled() -> None:
    source = Source(5)
    stream = await open_chunks(source.chunks())
    closed = asyncio.Event()

    async def reader() -> None:
        try:
            async for _ in stream:
                await asyncio.sleep(30)  # a client slow to take the chunk: cancelled here
        finally:
            assert not stream.finished  # the work behind it waits at its next chunk
            with anyio.CancelScope() as scope:  # level-triggered, as under anyio: a plain await would raise
                scope.cancel()
                await close_quietly(stream)  # shielded, so the cleanup still runs
            closed.set()

    task = asyncio.create_task(reader())
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert closed.is_set() and stream.finished and source.cleaned_up
