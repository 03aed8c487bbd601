"""The HTTP client the adapter sends with: httpx's API over aiohttp's connection pool.

httpcore's pool costs about three times the CPU per request of aiohttp's on this
path (`bench/gateway_overhead.py`: a bare proxy endpoint managed ~350 requests/s
at concurrency 16 on httpcore, ~1,200 on httpx-aiohttp's transport), and the
gateway's own overhead is mostly its upstream calls. httpx-aiohttp is the
transport the openai SDK offers for the same reason (`DefaultAioHttpClient`).
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from pydantic_core import to_json

LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
ACCEPTED_ENCODINGS = "gzip, deflate"


class _TruthfulStream(httpx.AsyncByteStream):
    """A response body whose failures say what they were (see `ConnectionFailuresAsSuch`)."""

    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for piece in self._inner:
                yield piece
        except httpx.TimeoutException as exc:
            raise _unmasked(exc, connecting=False) from exc.__cause__

    async def aclose(self) -> None:
        await self._inner.aclose()


class ConnectionFailuresAsSuch(AiohttpTransport):
    """httpx-aiohttp's transport, with a refused or dropped connection reported as a connection error.

    httpx-aiohttp 0.2 maps every aiohttp `ClientConnectionError` (refused,
    reset, server gone mid-answer) to `httpx.ConnectTimeout`; the adapter
    would then report a dead upstream as a slow one (and the failover policy
    treats the two differently). A real timeout keeps its type.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request`; the response's body stream maps its failures the same way."""
        try:
            response = await super().handle_async_request(request)
        except httpx.TimeoutException as exc:
            raise _unmasked(exc, connecting=True) from exc.__cause__
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _TruthfulStream(response.stream)
        return response


def _unmasked(exc: httpx.TimeoutException, *, connecting: bool) -> httpx.TransportError:
    """`exc` itself when a timeout caused it; otherwise the connection error it was."""
    if isinstance(exc.__cause__, TimeoutError):  # aiohttp's timeouts are asyncio (= builtin) TimeoutErrors
        return exc
    return (httpx.ConnectError if connecting else httpx.ReadError)(str(exc))


def pooled_session() -> aiohttp.ClientSession:
    """The aiohttp session under the transport (`trust_env` off: see `proxy_from_environment`)."""
    connector = aiohttp.TCPConnector(limit=LIMITS.max_connections or 0,
                                     keepalive_timeout=LIMITS.keepalive_expiry,
                                     ssl=httpx.create_ssl_context())
    return aiohttp.ClientSession(connector=connector)


def proxy_from_environment(base_url: str | None) -> httpx.Proxy | None:
    """The proxy HTTPS_PROXY / HTTP_PROXY name for `base_url`, unless NO_PROXY exempts its host.

    Decided once per upstream, as httpx's client did per request: aiohttp's own `trust_env`
    looks the environment (and ~/.netrc) up on every request, through a thread pool, which
    doubled the CPU a proxied request cost here.
    """
    if not base_url:
        return None
    url = httpx.URL(base_url)
    if urllib.request.proxy_bypass(url.host):
        return None
    proxy = urllib.request.getproxies().get(url.scheme)
    return httpx.Proxy(proxy) if proxy else None


class UpstreamHttp:
    """Sends requests straight to the pooled transport: httpx's Request and Response, no client layer.

    httpx's client adds what an API proxy does not want and pays for it on every call
    (about 0.3 ms here): a cookie jar shared by every user's requests (an upstream's cookies
    would travel between them), redirect and auth flows, URL merging. The adapter builds
    the request itself: one URL object per endpoint, the body serialized once by pydantic-core.
    """

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    def url(self, base: str, path: str) -> httpx.URL:
        """`base` joined with `path`, parsed once (keep it: parsing costs on every request)."""
        return httpx.URL(base.rstrip("/") + path)

    @asynccontextmanager
    async def open(self, method: str, url: httpx.URL, *, headers: dict[str, str],
                   json: Any = None) -> AsyncIterator[httpx.Response]:
        """The response to one request, headers read and body not yet; closed on leaving."""
        content = to_json(json) if json is not None else b""
        # Only encodings httpx decodes: aiohttp would otherwise offer whatever it can decode itself.
        headers = {"accept-encoding": ACCEPTED_ENCODINGS, **headers}
        if content:
            headers["content-type"] = "application/json"
        request = httpx.Request(method, url, headers=headers, content=content)
        response = await self._transport.handle_async_request(request)
        try:
            yield response
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._transport.aclose()


async def open_upstream_http(base_url: str | None = None) -> AsyncIterator[UpstreamHttp]:
    """A pooled sender for the upstream at `base_url`, closed with the app.

    No per-read timeout: the adapter puts whole-attempt deadlines around every call, and a
    per-read timeout would only cut long streams short.
    """
    http = UpstreamHttp(ConnectionFailuresAsSuch(limits=LIMITS, client=pooled_session,
                                                proxy=proxy_from_environment(base_url)))
    try:
        yield http
    finally:
        await http.aclose()
