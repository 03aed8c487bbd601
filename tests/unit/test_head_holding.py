"""A response's head goes out with its body, in one write, through uvicorn's own request cycle."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from app.entrypoints.http.head_guard import CONTINUE, HeadGuardedProtocol, HeadHoldingTransport


class RecordingTransport(asyncio.Transport):
    """What a connection was asked to write, write by write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def whole(scope: dict, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def slow_stream(scope: dict, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await asyncio.sleep(0.05)  # the first event is not ready: the head must not wait for it
    await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def serve(app: Any, request: bytes, *, settle: float = 0.01) -> RecordingTransport:
    config = Config(app=app, http=HeadGuardedProtocol, log_config=None, lifespan="off")
    config.load()
    protocol = HeadGuardedProtocol(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    await asyncio.sleep(settle)
    protocol.connection_lost(None)
    return transport


async def test_a_whole_response_is_one_write() -> None:
    transport = await serve(whole, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")

    [write] = transport.writes
    assert write.startswith(b"HTTP/1.1 200 OK\r\n") and write.endswith(b"\r\n\r\nok")


async def test_a_head_whose_body_is_late_goes_out_on_the_next_turn_of_the_loop() -> None:
    transport = RecordingTransport()
    holder = HeadHoldingTransport(transport, asyncio.get_running_loop())
    holder.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.writes == []
    await asyncio.sleep(0)
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\n"]
    holder.write(b"9\r\ndata: 1\n\n\r\n")  # what follows is written as it comes
    assert transport.writes[1:] == [b"9\r\ndata: 1\n\n\r\n"]


async def test_a_stream_through_uvicorn_gets_its_head_before_its_first_event() -> None:
    transport = await serve(slow_stream, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", settle=0.2)

    head, first, last = transport.writes
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    assert first == b"9\r\ndata: 1\n\n\r\n" and last == b"0\r\n\r\n"


async def test_an_interim_100_continue_is_not_held_and_the_head_after_it_is() -> None:
    transport = RecordingTransport()
    holder = HeadHoldingTransport(transport, asyncio.get_running_loop())
    holder.write(CONTINUE)
    holder.write(b"HTTP/1.1 200 OK\r\n\r\n")
    holder.write(b"ok")
    assert transport.writes == [CONTINUE, b"HTTP/1.1 200 OK\r\n\r\nok"]


async def test_closing_writes_a_held_head_first() -> None:
    transport = RecordingTransport()
    holder = HeadHoldingTransport(transport, asyncio.get_running_loop())
    holder.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    holder.close()
    await asyncio.sleep(0)  # the scheduled flush finds nothing more to write
    assert transport.writes == [b"HTTP/1.1 204 No Content\r\n\r\n"] and transport.closed
