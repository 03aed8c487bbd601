"""The server's DisconnectSignal: fired when a client leaves mid-request, and what waits on it is cancelled."""

from __future__ import annotations

import asyncio
from typing import Any

from app.entrypoints.http.disconnect import EXTENSION, ClientDisconnected, unless_disconnected

from tests.support.uvicorn_cycle import serve

REQUEST = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"


async def test_a_client_leaving_mid_request_cancels_the_work_without_anyone_calling_receive() -> None:
    outcome: list[str] = []

    async def receive_unused() -> Any:
        outcome.append("receive called")
        await asyncio.sleep(3600)

    async def app(scope: dict, receive: Any, send: Any) -> None:
        try:
            await unless_disconnected(scope, receive_unused, asyncio.sleep(10))
        except ClientDisconnected:
            outcome.append("disconnected")

    await serve(app, REQUEST, settle=0.05)  # the connection is lost 0.05 s in
    await asyncio.sleep(0.01)

    assert outcome == ["disconnected"]


async def test_the_signal_is_not_fired_once_the_response_is_complete() -> None:
    signals: list[Any] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        signals.append(scope["extensions"][EXTENSION])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    await serve(app, REQUEST)

    [signal] = signals
    assert signal.gone is False


async def test_work_for_a_client_already_gone_is_not_started() -> None:
    started: list[bool] = []

    async def work() -> None:
        started.append(True)

    async def app(scope: dict, receive: Any, send: Any) -> None:
        await asyncio.sleep(0.05)  # the connection is lost meanwhile
        try:
            await unless_disconnected(scope, receive, work())
        except ClientDisconnected:
            started.append(False)

    await serve(app, REQUEST, settle=0.01)
    await asyncio.sleep(0.08)

    assert started == [False]
