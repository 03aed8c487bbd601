"""Reading an upstream's events: what is already read is taken without waiting."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.adapters.openai_compatible.sse import SseReader


async def pieces(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_events_read_together_are_ready_and_a_partial_one_is_not() -> None:
    reader = SseReader(pieces(b"data: 1\n\n: keep-alive\n\ndata: 2\n\ndata: 3", b"\n\n"),
                       max_event_bytes=1024, label="upstream")
    assert reader.ready() is None  # nothing read yet
    first = await reader.next_event()  # reads the first piece
    assert first is not None and first.data == "1"
    second = reader.ready()  # the comment is skipped; no await, no timer
    assert second is not None and second.data == "2"
    assert reader.ready() is None  # "data: 3" has no end yet
    third = await reader.next_event()
    assert third is not None and third.data == "3"
    assert await reader.next_event() is None
