"""The plainest Python proxy, a reference for `gateway_overhead.py`'s worker ratio.

A raw ASGI app under uvicorn (httptools, uvloop, as the gateway runs) that forwards each
request's body to the canned upstream over one aiohttp session and answers with the bytes it
gets back: no auth, no validation, no logging, no metrics. Whatever Python gateway one writes
spends at least this much CPU per request, so the ratio `--workers 2` gives here, on the same
cores as the load, shows what the harness allows a proxy that cheap.

    PLAIN_PROXY_UPSTREAM=http://127.0.0.1:PORT/chat/completions \
        uvicorn plain_proxy:app --app-dir bench --http httptools --loop uvloop --no-access-log
"""

from __future__ import annotations

import os

import aiohttp

UPSTREAM = os.environ.get("PLAIN_PROXY_UPSTREAM", "http://127.0.0.1:8001/chat/completions")
JSON = {"content-type": "application/json"}
_session: aiohttp.ClientSession | None = None


async def app(scope: dict, receive, send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    assert _session is not None
    async with _session.post(UPSTREAM, data=body, headers=JSON) as response:
        status, answer = response.status, await response.read()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


async def _lifespan(receive, send) -> None:
    global _session
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _session is not None:
                await _session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
