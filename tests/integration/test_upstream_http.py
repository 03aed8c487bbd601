"""The upstream client itself, against a loopback server: what one user's call leaves behind for the next."""

from __future__ import annotations

from aiohttp import web

from app.adapters.openai_compatible.transport import open_upstream_http


async def test_an_upstreams_cookies_are_never_sent_back() -> None:
    seen: list[str | None] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.headers.get("cookie"))
        return web.json_response({"ok": True}, headers={"set-cookie": "session=user-a; Path=/"})

    app = web.Application()
    app.router.add_post("/chat/completions", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async for http in open_upstream_http():
            # A host name, not an address: aiohttp's cookie jars keep no cookies of IP addresses anyway.
            url = http.url(f"http://localhost:{port}", "/chat/completions")
            for _ in range(2):  # a second user's request, on the same pooled session
                async with http.open("POST", url, headers={}, json={"model": "m"}) as response:
                    assert response.status_code == 200
                    assert b"".join([piece async for piece in response.aiter_bytes()]) == b'{"ok": true}'
    finally:
        await runner.cleanup()
    assert seen == [None, None]
