"""uvicorn's httptools protocol with bounds on every request head: the one protocol `make serve` runs.

uvicorn bounds neither a head's size nor its time. httptools buffers a header of
any size (a 64 MB header was read and parsed, 4.3 s of CPU, while `/healthz`
stalled), and no timer runs on a connection until its first response, so a
client that sends half a head holds the connection for good. (h11, `--http h11`, caps a head at
`--h11-max-incomplete-event-size` but has no timer either.)

Served with `--http app.entrypoints.http.head_guard:HeadGuardedProtocol`, a
connection must deliver each request head within HEADER_READ_TIMEOUT_SECONDS
of the connection opening or the request's first byte, and in at most
MAX_HEADER_BYTES (counted per read, so one read more at worst), or it is
answered 408 or 431 in the OpenAI envelope and closed. An ASGI app only ever
sees a head already read, so this cannot live in the middleware (`limits.py`).

Each response's head goes out with its body (`head_holding.py`), and a request over
`--limit-concurrency` is answered by the app (`limits.py`), not with uvicorn's plain text.

Each request's scope also carries a `DisconnectSignal` (`disconnect.py`), fired
when its connection is lost before its response is complete: the work for a
client that left is cancelled without a task watching `receive`.
"""

from __future__ import annotations

import asyncio
import functools
from http import HTTPStatus
from typing import TYPE_CHECKING

from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.entrypoints.http.disconnect import EXTENSION, DisconnectSignal
from app.entrypoints.http.errors import error_bytes
from app.entrypoints.http.head_holding import HeadHoldingTransport, flushed_then
from app.entrypoints.http.limits import OVER_CAPACITY
from app.settings import Settings

if TYPE_CHECKING:
    from uvicorn._types import ASGI3Application
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle


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


class HeadGuardedProtocol(HttpToolsProtocol):
    """httptools' protocol, closing connections whose request head is too large or too slow.

    It also marks a request over `--limit-concurrency` for the app to answer (`_start_asgi_task`),
    and counts a request against that limit until it ends, not a turn of the loop later
    (`_forget_ended_tasks`).
    """

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
        cycle = self.cycle
        super().connection_lost(exc)
        if cycle is not None and cycle.disconnected:  # the client left before its response was complete
            signal = cycle.scope.get("extensions", {}).get(EXTENSION)
            if signal is not None:
                signal.fire()

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
        if self.limit_concurrency is not None and len(self.tasks) >= self.limit_concurrency:
            self._forget_ended_tasks()
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not previous:  # this request's (its task has not run yet)
            holder = HeadHoldingTransport(self.transport, self.loop)
            self.cycle.transport = holder  # type: ignore[assignment]
            self.cycle.on_response = functools.partial(flushed_then, holder, self.cycle.on_response)
            self.cycle.scope.setdefault("extensions", {})[EXTENSION] = DisconnectSignal()  # type: ignore[typeddict-item]

    def _forget_ended_tasks(self) -> None:
        """Take the requests that have ended out of uvicorn's count of those in flight, before its check.

        uvicorn counts a task until its done callback, a turn of the event loop after the task
        ended. Under load, keep-alive clients send their next request in that turn, so requests
        already answered were counted: from 56 clients under a limit of 64, 6% of requests were
        refused with 503, and each refusal closed a connection.
        """
        # Their done callbacks discard them again later, finding nothing.
        self.tasks.difference_update([task for task in self.tasks if task.done()])

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        # uvicorn (0.45+) starts every request here, pipelined ones included. Over --limit-concurrency
        # it passes its plain-text 503: the app answers instead (`limits.py`), so that the 503 is in
        # the envelope, and counted and logged like any other.
        if app is service_unavailable:
            extensions = cycle.scope.setdefault("extensions", {})  # type: ignore[typeddict-item]
            extensions[OVER_CAPACITY] = self.limit_concurrency
            app = self.app
        super()._start_asgi_task(cycle, app)

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
