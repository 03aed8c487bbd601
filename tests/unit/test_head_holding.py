"""A response's head goes out with its body, and a turn's events together: through uvicorn's own request cycle."""

from __future__ import annotations

import asyncio
from typing import Any

from app.entrypoints.http.head_holding import CONTINUE, HeadHoldingTransport

from tests.support.uvicorn_cycle import RecordingTransport, serve


async def whole(scope: dict, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def slow_stream(scope: dict, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await asyncio.sleep(0.05)  # the first event is not ready: the head must not wait for it
    await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def burst(transport: RecordingTransport, seen_at_the_end: list[int], *, turn_between: bool = False) -> Any:
    """A stream of three events made in one turn of the loop (or a turn apart), then its end."""

    async def app(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for n in (1, 2, 3):
            await send({"type": "http.response.body", "body": b"data: %d\n\n" % n, "more_body": True})
            if turn_between:
                await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b""})
        seen_at_the_end.append(len(transport.writes))  # before the loop turns again

    return app


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


async def test_a_streams_events_made_in_one_turn_go_out_in_one_write_after_the_first() -> None:
    transport, seen = RecordingTransport(), []
    await serve(burst(transport, seen), b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", transport=transport)

    head_and_first, rest = transport.writes
    assert head_and_first.startswith(b"HTTP/1.1 200 OK\r\n") and head_and_first.endswith(b"9\r\ndata: 1\n\n\r\n")
    assert rest == b"9\r\ndata: 2\n\n\r\n9\r\ndata: 3\n\n\r\n0\r\n\r\n"
    assert seen == [2]  # the response's last write went out as it completed, not a turn later


async def test_events_made_a_turn_apart_go_out_a_turn_apart() -> None:
    transport, seen = RecordingTransport(), []
    await serve(burst(transport, seen, turn_between=True), b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
                transport=transport)

    assert transport.writes[1:] == [b"9\r\ndata: 2\n\n\r\n", b"9\r\ndata: 3\n\n\r\n", b"0\r\n\r\n"]
