"""Server-sent events read one at a time from a byte stream, with a cap on an event's size."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from app.domain.errors import UpstreamUnavailable


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One event: its name (`message` unless an `event:` line said otherwise) and its data lines joined."""

    name: str
    data: str


def parse_event(block: str) -> SseEvent | None:
    """The event of one blank-line-separated block; None for a block without data (comments, keep-alives)."""
    name, data = "message", []
    for line in block.split("\n"):
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value.strip() or "message"
        elif field == "data":
            data.append(value)
    return SseEvent(name, "\n".join(data)) if data else None


class SseReader:
    """Reads events from `chunks` (raw bytes); an event longer than `max_event_bytes` is an upstream failure.

    Bytes are decoded per event, with undecodable bytes replaced, so a broken
    byte from upstream spoils one character, not the stream.
    """

    def __init__(self, chunks: AsyncIterator[bytes], *, max_event_bytes: int, label: str) -> None:
        self._chunks = chunks
        self._max = max_event_bytes
        self._label = label
        self._buffer = bytearray()
        self._ended = False

    def ready(self) -> SseEvent | None:
        """The next event if its bytes are all read already (nothing to wait for), else None."""
        while (end := self._buffer.find(b"\n\n")) >= 0:
            block = bytes(self._buffer[:end])
            del self._buffer[:end + 2]
            event = parse_event(block.decode("utf-8", "replace"))
            if event is not None:
                return event
        return None

    async def next_event(self) -> SseEvent | None:
        """The next event, or None once the body has ended."""
        while True:
            event = self.ready()
            if event is not None:
                return event
            if self._ended:
                rest, self._buffer = bytes(self._buffer), bytearray()
                return parse_event(rest.decode("utf-8", "replace")) if rest.strip() else None
            if len(self._buffer) > self._max:
                raise UpstreamUnavailable(f"{self._label} sent a stream event over {self._max} bytes",
                                          kind="malformed")
            try:
                data = await anext(self._chunks)
            except StopAsyncIteration:
                self._ended = True
                continue
            self._buffer = _newlines_as_lf(self._buffer + data)


def _newlines_as_lf(buffer: bytearray) -> bytearray:
    """CRLF and CR line ends as LF (one form keeps the blank-line search simple).

    A trailing CR is kept as it is: its LF may come with the next bytes.
    """
    if b"\r" not in buffer:
        return buffer
    tail = b"\r" if buffer.endswith(b"\r") else b""
    body = bytes(buffer[:-1] if tail else buffer)
    return bytearray(body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail)
