"""A client that leaves cancels the work done for it (a whole answer, a stream being opened or sent).

Starlette does not cancel a handler when its client goes away: a non-streamed
request abandoned by its client would keep the local model generating, or an
upstream call open, until it ends by itself. `unless_disconnected` races the
work against the ASGI `http.disconnect` message and cancels the work when the
client goes first (cancelling an httpx call closes its connection; cancelling
local generation stops its decode loop).

When a route handler runs, its body has been read in full, so the next message
`receive` gives is `http.disconnect`: the server sends it when the client
closes the connection (or after the response is complete, by which time the
race is over). The limits middleware, which wraps `receive`, passes it on.
A stream is watched while it is opened and again while it is sent
(`streaming.py`): an upstream that goes quiet mid-answer gives no send to fail.
The watcher is cancelled when the work is done, without taking a message from
`receive`. Under the server protocol `make serve` runs (`head_guard.py`), the
server itself says when the client leaves (a `DisconnectSignal` in the scope),
and no task watches `receive`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.types import Receive, Scope

log = logging.getLogger(__name__)

T = TypeVar("T")

EXTENSION = "app.disconnect"  # in scope["extensions"]: the request's DisconnectSignal, set by the server


class ClientDisconnected(Exception):
    """The client closed its connection before the answer was ready; the work was cancelled."""


class DisconnectSignal:
    """Tells whoever waits that a request's client closed its connection.

    The server protocol (`head_guard.py`) puts one in each request's scope and fires it
    when the connection is lost before the response is complete. Waiting on it costs a
    callback in a list, where watching `receive` costs a task, its `receive` calls and its
    cancellation, for each stage of a request (issue 14).
    """

    __slots__ = ("gone", "_callbacks")

    def __init__(self) -> None:
        self.gone = False
        self._callbacks: list[Callable[[], None]] = []

    def fire(self) -> None:
        """The client left: call everyone waiting, once."""
        if not self.gone:
            self.gone = True
            callbacks, self._callbacks = self._callbacks, []
            for callback in callbacks:
                callback()

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` when the client leaves; returns the call that stops that."""
        self._callbacks.append(callback)
        return lambda: self._unsubscribe(callback)

    def _unsubscribe(self, callback: Callable[[], None]) -> None:
        try:
            self._callbacks.remove(callback)
        except ValueError:  # already called: fire() emptied the list
            pass


def _signal(scope: Scope) -> DisconnectSignal | None:
    extensions = scope.get("extensions")
    return extensions.get(EXTENSION) if extensions else None


def _watch_receive(receive: Receive, on_gone: Callable[[], None]) -> Callable[[], None]:
    """Wait for `http.disconnect` from `receive` in a task (any ASGI server); returns its cancel."""

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass  # a body message after the body: nothing a handler waits for
        on_gone()

    return asyncio.ensure_future(watch()).cancel


async def unless_disconnected(scope: Scope, receive: Receive, work: Awaitable[T]) -> T:
    """The result of `work`, or ClientDisconnected (and `work` cancelled) if the client leaves first.

    Plain asyncio: the client's leaving cancels this task, which cancels `work` where it waits.
    It is learned from the server's DisconnectSignal when the scope has one, else from `receive`
    (an anyio task group did the same at about 0.1 ms a request, on the hottest path).
    """
    this = asyncio.current_task()
    assert this is not None
    signal = _signal(scope)
    if signal is not None and signal.gone:
        if asyncio.iscoroutine(work):
            work.close()
        log.info("client disconnected: the work for it was not started")
        raise ClientDisconnected
    gone = False

    def on_gone() -> None:
        nonlocal gone
        gone = True
        this.cancel()

    stop = signal.subscribe(on_gone) if signal is not None else _watch_receive(receive, on_gone)
    try:
        result = await work
    except asyncio.CancelledError:
        if not gone or this.uncancel() > 0:  # cancelled from elsewhere as well: that wins
            raise
        log.info("client disconnected: the work for it was cancelled")
        raise ClientDisconnected from None
    except BaseException:
        if gone:  # the work turned the cancellation into its own failure: the request is not cancelled
            this.uncancel()
        raise
    finally:
        stop()
    if gone:
        this.uncancel()
    return result
