"""The upstream client itself, against a loopback server: what one user's call leaves behind for the next."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from app.adapters.openai_compatible.transport import open_upstream_http

Handler = Callable[[web.Request], Awaitable[web.Response]]


@asynccontextmanager
async def upstream(handler: Handler) -> AsyncIterator[int]:
    """A loopback server answering POST /chat/completions with `handler`; yields its port."""
    app = web.Application()
    app.router.add_post("/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def test_an_upstreams_cookies_are_never_sent_back() -> None:
    seen: list[str | None] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.headers.get("cookie"))
        return web.json_response({"ok": True}, headers={"set-cookie": "session=user-a; Path=/"})

    async with upstream(answer) as port:
        async for http in open_upstream_http():
            # A host name, not an address: aiohttp's cookie jars keep no cookies of IP addresses anyway.
            url = http.url(f"http://localhost:{port}", "/chat/completions")
            for _ in range(2):  # a second user's request, on the same pooled session
                async with http.open("POST", url, headers={}, json={"model": "m"}) as response:
                    assert response.status_code == 200
                    assert b"".join([piece async for piece in response.aiter_bytes()]) == b'{"ok": true}'
    assert seen == [None, None]


async def test_a_compressed_answer_is_read_decoded() -> None:
    body = b'{"choices": [{"message": {"content": "' + b"hello " * 2000 + b'"}}]}'
    encoders = {"gzip": gzip.compress, "deflate": zlib.compress}

    async def answer(request: web.Request) -> web.Response:
        encoding = request.query["as"]
        return web.Response(body=encoders[encoding](body), content_type="application/json",
                            headers={"content-encoding": encoding})

    async with upstream(answer) as port:
        async for http in open_upstream_http():
            for encoding in encoders:
                url = http.url(f"http://127.0.0.1:{port}", f"/chat/completions?as={encoding}")
                async with http.open("POST", url, headers={}, json={}) as response:
                    assert b"".join([piece async for piece in response.aiter_bytes()]) == body
