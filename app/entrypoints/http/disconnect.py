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
`receive`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Receive

log = logging.getLogger(__name__)

T = TypeVar("T")


class ClientDisconnected(Exception):
    """The client closed its connection before the answer was ready; the work was cancelled."""


async def unless_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """The result of `work`, or ClientDisconnected (and `work` cancelled) if the client leaves first.

    Plain asyncio: the watcher cancels this task, which cancels `work` where it waits. (An anyio
    task group did the same at about 0.1 ms a request, on the hottest path.)
    """
    this = asyncio.current_task()
    assert this is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass  # a body message after the body: nothing a handler waits for
        gone = True
        this.cancel()

    watcher = asyncio.ensure_future(watch())
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
        watcher.cancel()
    if gone:
        this.uncancel()
    return result
