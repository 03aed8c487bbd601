"""uvicorn's httptools protocol with bounds on every request head, and each response head sent with its body.

uvicorn bounds neither. httptools buffers a header of any size (a 64 MB header
was read and parsed, 4.3 s of CPU, while `/healthz` stalled), and no timer runs
on a connection until its first response, so a client that sends half a head
holds the connection for good. (h11, `--http h11`, caps a head at
`--h11-max-incomplete-event-size` but has no timer either.)

Served with `--http app.entrypoints.http.head_guard:HeadGuardedProtocol`, a
connection must deliver each request head within HEADER_READ_TIMEOUT_SECONDS
of the connection opening or the request's first byte, and in at most
MAX_HEADER_BYTES (counted per read, so one read more at worst), or it is
answered 408 or 431 in the OpenAI envelope and closed. An ASGI app only ever
sees a head already read, so this cannot live in the middleware (`limits.py`).

uvicorn writes a response's head and its body in two system calls. The first one
wakes the client, and on this 2-core machine it took ~0.1 ms more than the second in a
traced request (issue 14). Each response's head is held here until
its first body write, which carries both, or until the event loop's next turn
(a stream whose first event is not ready yet), so no head waits on an event.
"""

from __future__ import annotations

import asyncio
import functools
from http import HTTPStatus

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.entrypoints.http.errors import error_bytes
from app.settings import Settings

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"  # an interim answer: written at once, never held


@functools.cache
def head_limits() -> tuple[int, float]:
    """MAX_HEADER_BYTES and HEADER_READ_TIMEOUT_SECONDS, read once per process from the environment."""
    settings = Settings()
    return settings.max_header_bytes, settings.header_read_timeout_seconds


def raw_error_response(status: HTTPStatus, message: str, code: str) -> bytes:
    """A whole HTTP/1.1 response carrying the error envelope, ending the connection."""
    body = error_bytes(message, code=code)
    head = (f"HTTP/1.1 {status.value} {status.phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("ascii") + body


class HeadHoldingTransport:
    """One response's view of the connection: its head is held for the write after it.

    uvicorn's request cycle writes the head, then each piece of the body, then may close;
    anything else it asks of the transport goes to the connection's own.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head_seen = False
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if not self._head_seen and data != CONTINUE:
            self._head_seen = True
            self._held = data
            self._loop.call_soon(self.flush)
            return
        if self._held is not None:
            data, self._held = self._held + data, None
        self._transport.write(data)

    def flush(self) -> None:
        """Write the held head, if it is still held."""
        if self._held is not None:
            held, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)


class HeadGuardedProtocol(HttpToolsProtocol):
    """httptools' protocol, closing connections whose request head is too large or too slow."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._max_head_bytes, self._head_timeout = head_limits()
        self._head_bytes = 0
        self._reading_head = True
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self._max_head_bytes:
                self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                             f"The request head is larger than {self._max_head_bytes} bytes.",
                             "headers_too_large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head()

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._stop_timer()
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not previous:  # this request's (its task has not run yet)
            self.cycle.transport = HeadHoldingTransport(self.transport, self.loop)  # type: ignore[assignment]

    def _start_head(self) -> None:
        """A head begins: count its bytes; the clock runs from its connection or its first byte."""
        self._reading_head = True
        self._head_bytes = 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._head_timeout, self._on_head_timeout)

    def _stop_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _on_head_timeout(self) -> None:
        self._head_timer = None
        if not self._reading_head or self.transport.is_closing():
            return
        if self._head_bytes == 0:
            self.transport.close()  # an idle connection that never asked anything: just close it
            return
        self._refuse(HTTPStatus.REQUEST_TIMEOUT, f"The request head did not arrive within "
                                                 f"{self._head_timeout:g} seconds.", "request_timeout")

    def _refuse(self, status: HTTPStatus, message: str, code: str) -> None:
        self._stop_timer()
        self.transport.write(raw_error_response(status, message, code))
        self.transport.close()
