"""The HTTP client the adapter sends with: httpx's API over aiohttp's connection pool.

httpcore's pool costs about three times the CPU per request of aiohttp's on this
path (`bench/gateway_overhead.py`: a bare proxy endpoint managed ~350 requests/s
at concurrency 16 on httpcore, ~1,200 on httpx-aiohttp's transport), and the
gateway's own overhead is mostly its upstream calls. httpx-aiohttp is the
transport the openai SDK offers for the same reason (`DefaultAioHttpClient`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from httpx_aiohttp import AiohttpTransport

LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


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


async def open_http_client(*, timeout: float | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A pooled HTTP client for an upstream, closed with the app.

    No per-read timeout by default: the adapter puts whole-attempt deadlines
    around every call, and a per-read timeout would only cut long streams short.
    """
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout), limits=LIMITS,
                                 transport=ConnectionFailuresAsSuch(limits=LIMITS)) as client:
        yield client
