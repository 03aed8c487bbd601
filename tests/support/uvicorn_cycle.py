"""uvicorn's own request cycle, driven by hand over a transport that records what it is asked to write."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from app.entrypoints.http.head_guard import HeadGuardedProtocol


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


async def serve(app: Any, request: bytes, *, settle: float = 0.01,
                transport: RecordingTransport | None = None) -> RecordingTransport:
    config = Config(app=app, http=HeadGuardedProtocol, log_config=None, lifespan="off")
    config.load()
    protocol = HeadGuardedProtocol(config=config, server_state=ServerState(), app_state={})
    transport = transport or RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    await asyncio.sleep(settle)
    protocol.connection_lost(None)
    return transport
