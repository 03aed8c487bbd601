"""Each response's head sent with its body, and a stream's events gathered per turn of the event loop.

uvicorn writes a response's head and its body in two system calls, and a stream's
events in one each. The first write wakes the client, and on this 2-core machine it
took ~0.1 ms more than the second in a traced request (issue 14). Each response's head
is held here until its first body write, which carries both, or until the event loop's
next turn (a stream whose first event is not ready yet), so no head waits on an event.
After the first body write, the writes one turn of the loop makes go out together.
`head_guard.HeadGuardedProtocol` puts a `HeadHoldingTransport` under each request's cycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"  # an interim answer: written at once, never held


class HeadHoldingTransport:
    """One response's view of the connection: its head goes out with its first body write, and
    what follows is gathered while one turn of the event loop runs.

    The first body write is never held (a stream's first event: the time to first byte). The
    writes after it that the same turn makes (a stream's events that came in one upstream read)
    go out in one write at the end of that turn, or when the response completes, instead of one
    system call each: on this 2-core machine a write that wakes a sleeping reader costs ~13 us.
    uvicorn's request cycle writes the head, then each piece of the body, then may close;
    anything else it asks of the transport goes to the connection's own.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head_seen = False
        self._body_seen = False
        self._held: list[bytes] = []
        self._flush_due = False

    def write(self, data: bytes) -> None:
        if self._body_seen:
            self._hold(data)
        elif not self._head_seen:
            if data == CONTINUE:  # an interim answer: not the head
                self._transport.write(data)
                return
            self._head_seen = True
            self._hold(data)
        else:
            self._body_seen = True
            held, self._held = self._held, []
            self._transport.write(b"".join((*held, data)) if held else data)

    def _hold(self, data: bytes) -> None:
        self._held.append(data)
        if not self._flush_due:
            self._flush_due = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what is held, if anything is."""
        self._flush_due = False
        if self._held:
            held, self._held = self._held, []
            if not self._transport.is_closing():
                self._transport.write(b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)


def flushed_then(holder: HeadHoldingTransport, on_response: Callable[[], None]) -> None:
    """A response is complete: its last writes go out now, then uvicorn carries on."""
    holder.flush()
    on_response()
