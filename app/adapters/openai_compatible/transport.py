"""The HTTP client the adapter sends with: aiohttp's connection pool, with httpx's vocabulary of errors.

httpcore's pool costs about three times the CPU per request of aiohttp's on this
path (`bench/gateway_overhead.py`: a bare proxy endpoint managed ~350 requests/s
at concurrency 16 on httpcore, ~1,200 on aiohttp), and the gateway's own overhead
is mostly its upstream calls. aiohttp is called directly: httpx's Request and
Response objects around it (httpx-aiohttp's transport) were 5% of a proxied
request's CPU more (issue 14). The adapter reads a response's status, headers and
body pieces (`UpstreamResponse`), and its failures keep httpx's exception types,
the adapter's vocabulary for "could not connect", "broke while reading" and "timed out".
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import httpx
from pydantic_core import to_json
from yarl import URL

MAX_CONNECTIONS = 100
KEEPALIVE_SECONDS = 5.0
ACCEPTED_ENCODINGS = "gzip, deflate"
# No per-read or total timeout in aiohttp: the adapter puts whole-attempt deadlines around every
# call, and a per-read timeout would only cut long streams short.
NO_TIMEOUT = aiohttp.ClientTimeout()


def _as_httpx_error(exc: aiohttp.ClientError, *, connecting: bool) -> httpx.HTTPError:
    """The httpx exception the adapter handles for one of aiohttp's failures."""
    message = str(exc)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(exc, (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError)):
        return httpx.ProxyError(message)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return httpx.ReadError(message)
    if isinstance(exc, aiohttp.ClientConnectionError):  # refused, reset, the server gone mid-answer
        return httpx.ConnectError(message) if connecting else httpx.ReadError(message)
    return httpx.RemoteProtocolError(message)  # a malformed status line or header, say


class UpstreamResponse:
    """One upstream answer: its status and headers, and its body in pieces as they arrive (decoded)."""

    def __init__(self, raw: aiohttp.ClientResponse) -> None:
        self._raw = raw
        self.status_code: int = raw.status
        self.headers: Mapping[str, str] = raw.headers  # case-insensitive

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body's pieces, gzip or deflate decoded; a broken body raises httpx.ReadError."""
        return _Pieces(self._raw.content)


class _Pieces:
    """A body's pieces as they arrive: an iterator object, not an async generator.

    A reader that stops early (a stream ends at `[DONE]`, before the body's last
    empty read) leaves nothing suspended: a generator left so is closed by the
    garbage collector, which asks the event loop, through a thread-safe wake-up,
    for a task to run its close (issue 14: that hop was on every streamed request).
    """

    __slots__ = ("_content",)

    def __init__(self, content: aiohttp.StreamReader) -> None:
        self._content = content

    def __aiter__(self) -> _Pieces:
        return self

    async def __anext__(self) -> bytes:
        try:
            piece = await self._content.readany()
        except aiohttp.ClientError as exc:
            raise _as_httpx_error(exc, connecting=False) from exc
        if not piece:  # aiohttp's end of body
            raise StopAsyncIteration
        return piece


def pooled_session() -> aiohttp.ClientSession:
    """The aiohttp session (`trust_env` off: see `proxy_from_environment`; no cookies kept)."""
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_SECONDS,
                                     ssl=httpx.create_ssl_context())
    # An upstream's cookies must not travel from one user's request to another's.
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(), timeout=NO_TIMEOUT)


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
    """Sends requests over the pooled session: no redirects followed, no cookies kept, no client layer.

    The adapter builds each request itself: one URL per endpoint, the body serialized once by
    pydantic-core, the proxy decided once.
    """

    def __init__(self, session: aiohttp.ClientSession, *, proxy: httpx.Proxy | None = None) -> None:
        self._session = session
        self._proxy: dict[str, Any] = {} if proxy is None else {
            "proxy": str(proxy.url), "proxy_headers": dict(proxy.headers),
            "proxy_auth": aiohttp.BasicAuth(*proxy.auth) if proxy.auth else None}

    def url(self, base: str, path: str) -> URL:
        """`base` joined with `path`, parsed (keep it: built once per endpoint, not on every request)."""
        return URL(base.rstrip("/") + path)

    @asynccontextmanager
    async def open(self, method: str, url: URL, *, headers: dict[str, str],
                   json: Any = None) -> AsyncIterator[UpstreamResponse]:
        """The response to one request, headers read and body not yet; closed (released) on leaving."""
        content = to_json(json) if json is not None else None
        # Only encodings decoded here: aiohttp would otherwise offer whatever it can decode itself.
        headers = {"accept-encoding": ACCEPTED_ENCODINGS, **headers}
        if content is not None:
            headers["content-type"] = "application/json"
        try:
            raw = await self._session.request(method, url, headers=headers, data=content, allow_redirects=False,
                                              **self._proxy)
        except aiohttp.ClientError as exc:
            raise _as_httpx_error(exc, connecting=True) from exc
        try:
            yield UpstreamResponse(raw)
        finally:
            raw.release()  # back to the pool when the body was read in full; closed otherwise
            await raw.wait_for_close()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._session.close()


async def open_upstream_http(base_url: str | None = None) -> AsyncIterator[UpstreamHttp]:
    """A pooled sender for the upstream at `base_url`, closed with the app."""
    http = UpstreamHttp(pooled_session(), proxy=proxy_from_environment(base_url))
    try:
        yield http
    finally:
        await http.aclose()
