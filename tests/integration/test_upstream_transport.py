"""The adapter's HTTP sender over loopback sockets: proxies from the environment, failures named right."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from app.adapters.openai_compatible import OpenAICompatibleProvider, groq_endpoint
from app.adapters.openai_compatible.transport import open_upstream_http
from app.domain.errors import UpstreamTimeout, UpstreamUnavailable
from app.domain.models import ChatMessage, ChatRequest
from tests.support.net import free_port

HELLO = ChatRequest(messages=(ChatMessage(role="user", content="hello"),), model="openai/gpt-oss-120b")
ANSWER = json.dumps({
    "id": "chatcmpl-proxied", "object": "chat.completion", "created": 1, "model": "openai/gpt-oss-120b",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "via the proxy"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}}).encode()


class ForwardProxy:
    """A plain-HTTP forward proxy that answers every request itself and records its request line."""

    def __init__(self) -> None:
        self.request_lines: list[str] = []
        self.headers: list[dict[str, str]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        self.request_lines.append(lines[0])
        fields = (line.partition(":") for line in lines[1:] if line)
        self.headers.append({name.strip().lower(): value.strip() for name, _, value in fields})
        length = int(self.headers[-1].get("content-length", "0"))
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                     + f"content-length: {len(ANSWER)}\r\nconnection: close\r\n\r\n".encode() + ANSWER)
        await writer.drain()
        writer.close()


def provider(http, base_url: str) -> OpenAICompatibleProvider:  # type: ignore[no-untyped-def]
    return OpenAICompatibleProvider(http=http, endpoint=groq_endpoint(
        api_key="gsk_transport_test", base_url=base_url, total_seconds=5, first_chunk_seconds=5,
        idle_seconds=5))


@pytest.mark.parametrize("exempt", [False, True])
async def test_the_proxy_from_the_environment_carries_upstream_calls_unless_exempt(
        monkeypatch: pytest.MonkeyPatch, exempt: bool) -> None:
    proxy = ForwardProxy()
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("NO_PROXY", "groq.invalid" if exempt else "")
    base_url = "http://groq.invalid/openai/v1"
    async with server:
        async for http in open_upstream_http(base_url):
            if exempt:  # straight to a host that does not resolve
                with pytest.raises(UpstreamUnavailable):
                    await provider(http, base_url).complete(HELLO)
            else:
                assert (await provider(http, base_url).complete(HELLO)).text == "via the proxy"

    expected = [] if exempt else ["POST http://groq.invalid/openai/v1/chat/completions HTTP/1.1"]
    assert proxy.request_lines == expected
    if not exempt:  # only what httpx can decode is offered, whatever aiohttp could
        assert proxy.headers[0]["accept-encoding"] == "gzip, deflate"
        assert proxy.headers[0]["authorization"] == "Bearer gsk_transport_test"


async def test_a_proxys_credentials_go_to_the_proxy_alone_and_never_into_an_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = ForwardProxy()
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://squid-user:s3cret-pass@127.0.0.1:{port}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("NO_PROXY", "")
    base_url = "http://groq.invalid/openai/v1"
    async with server:
        async for http in open_upstream_http(base_url):
            assert (await provider(http, base_url).complete(HELLO)).text == "via the proxy"
    assert proxy.headers[0]["proxy-authorization"] == "Basic " + base64.b64encode(b"squid-user:s3cret-pass").decode()

    monkeypatch.setenv("HTTP_PROXY", f"http://squid-user:s3cret-pass@127.0.0.1:{free_port()}")  # nobody there
    async for http in open_upstream_http(base_url):
        with pytest.raises(UpstreamUnavailable) as raised:
            await provider(http, base_url).complete(HELLO)
    assert "s3cret" not in str(raised.value) and "s3cret" not in repr(raised.value.__cause__)


async def test_a_refused_connection_is_a_connection_failure_not_a_timeout() -> None:
    async for http in open_upstream_http():
        with pytest.raises(UpstreamUnavailable) as raised:
            await provider(http, f"http://127.0.0.1:{free_port()}/openai/v1").complete(HELLO)

    assert not isinstance(raised.value, UpstreamTimeout)
    assert raised.value.kind == "connection"


@pytest.mark.parametrize(("answer", "named"), [
    (None, "ConnectError"),  # nobody listening
    (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"id\":", "ReadError"),
    (b"HTTP/1.1 two hundred\r\n\r\n", "RemoteProtocolError"),
    (b"", "ConnectError"),  # closed before the answer's head: as good as not reached
])
async def test_each_kind_of_broken_upstream_is_named_in_the_failure(answer: bytes | None, named: str) -> None:
    """The operator's log line says which of httpx's failures it was, whatever aiohttp raised."""
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer or b"")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(reply, "127.0.0.1", 0) if answer is not None else None
    port = server.sockets[0].getsockname()[1] if server is not None else free_port()
    async for http in open_upstream_http():
        with pytest.raises(UpstreamUnavailable) as raised:
            await provider(http, f"http://127.0.0.1:{port}/openai/v1").complete(HELLO)
    if server is not None:
        server.close()
    assert f"({named})" in str(raised.value)
