"""`--limit-concurrency` counts the requests still running, not those that ended a turn ago (uvicorn's cycle).

uvicorn counts a request's task until the task's done callback, which runs a turn of the event
loop after the task ended. Under load, keep-alive clients send their next request in that turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from app.entrypoints.http.head_guard import HeadGuardedProtocol
from app.entrypoints.http.limits import OVER_CAPACITY

from tests.support.uvicorn_cycle import RecordingTransport

REQUEST = b"GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n"


Connect = Callable[[], HeadGuardedProtocol]


def server(limit: int, marked: list[bool], app: Any = None) -> tuple[ServerState, Connect]:
    """A server under `--limit-concurrency limit`, and a way to open a keep-alive connection to it.

    Its app notes in `marked` whether each request came marked over capacity.
    """

    async def answer(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def noting(scope: dict, receive: Any, send: Any) -> None:
        marked.append(OVER_CAPACITY in scope.get("extensions", {}))
        await (app or answer)(scope, receive, send)

    config = Config(app=noting, http=HeadGuardedProtocol, log_config=None, lifespan="off",
                    limit_concurrency=limit)
    config.load()
    state = ServerState()

    def connect() -> HeadGuardedProtocol:
        protocol = HeadGuardedProtocol(config=config, server_state=state, app_state={})
        protocol.connection_made(RecordingTransport())
        return protocol

    return state, connect


async def test_requests_that_ended_a_turn_ago_are_not_counted_against_the_limit() -> None:
    marked: list[bool] = []
    state, connect = server(3, marked)
    first, second = connect(), connect()
    first.data_received(REQUEST)
    second.data_received(REQUEST)
    await asyncio.sleep(0)  # both requests ran and were answered; uvicorn's done callbacks have not run
    assert marked == [False, False]

    first.data_received(REQUEST)  # each client's next request, in that same turn
    second.data_received(REQUEST)
    await asyncio.sleep(0.01)

    assert marked == [False, False, False, False]  # 2 connections and 1 request in flight, under 3
    assert not state.tasks


async def test_the_work_of_clients_that_left_still_counts_until_it_ends() -> None:
    marked: list[bool] = []
    release = asyncio.Event()

    async def held(scope: dict, receive: Any, send: Any) -> None:  # work that outlives its client
        await release.wait()

    _, connect = server(2, marked, held)
    for _ in range(2):  # two clients, one after the other, each leaving while its request runs
        client = connect()
        client.data_received(REQUEST)
        await asyncio.sleep(0)
        client.connection_lost(None)

    connect().data_received(REQUEST)  # 1 connection open, 2 requests still running: at the limit of 2
    await asyncio.sleep(0)
    release.set()
    await asyncio.sleep(0.01)

    assert marked == [False, False, True]
