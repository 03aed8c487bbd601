"""Limits before work: request head and body size, the body-read deadline, prompt size.

`RequestLimitsMiddleware` is plain ASGI and sits outside FastAPI, so it acts
before anything reads or parses the body:
- a head (path, query and headers) over MAX_HEADER_BYTES is a 431;
- a Content-Length over MAX_BODY_BYTES is a 413 at once, without reading the
  body; a body without one (chunked) is counted as it arrives and cut at the limit;
- a body not complete within BODY_READ_TIMEOUT_SECONDS of the request's head is a 408;
- a request the server protocol marked as over `--limit-concurrency` (`head_guard.py`, under
  OVER_CAPACITY in the scope's extensions) is a 503 `overloaded` with `Retry-After`, where
  uvicorn itself would answer a plain-text 503 that no metric or access line sees.
It answers those itself, in OpenAI's envelope with `Connection: close`, and
tells the app the client left. Any response sent before the body was read in
full also closes the connection, so an unread body is never drained.
(Memory and time spent on the head itself are bounded in the server protocol,
`head_guard.py`: by the time an ASGI app sees a head, it has been read.)

`check_prompt_size` caps the number of messages and the characters of a parsed
request (MAX_MESSAGES, MAX_PROMPT_CHARS) before any provider tokenizes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncio
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.domain.errors import InvalidRequest
from app.domain.models import ChatRequest
from app.entrypoints.http.errors import error_bytes
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """What one request may be, taken from the settings."""

    max_body_bytes: int
    max_header_bytes: int
    body_read_timeout_seconds: float
    max_messages: int
    max_prompt_chars: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestLimits:
        """The limits configured by MAX_BODY_BYTES, MAX_HEADER_BYTES, BODY_READ_TIMEOUT_SECONDS ..."""
        return cls(max_body_bytes=settings.max_body_bytes, max_header_bytes=settings.max_header_bytes,
                   body_read_timeout_seconds=settings.body_read_timeout_seconds,
                   max_messages=settings.max_messages, max_prompt_chars=settings.max_prompt_chars)


def install_limits(app: FastAPI, settings: Settings) -> None:
    """Put the limits in front of `app` and where routes find them (`deps.request_limits`)."""
    limits = RequestLimits.from_settings(settings)
    app.state.request_limits = limits
    app.add_middleware(RequestLimitsMiddleware, limits=limits)


def check_prompt_size(request: ChatRequest, limits: RequestLimits, *, param: str) -> None:
    """Refuse (400 naming `param`) a request with too many messages or characters to be worth reading."""
    if len(request.messages) > limits.max_messages:
        raise InvalidRequest(f"At most {limits.max_messages} messages are accepted per request; this one "
                             f"has {len(request.messages)}.", param="messages")
    chars = sum(len(m.content) for m in request.messages) + len(request.prompt or "")
    if chars > limits.max_prompt_chars:
        raise InvalidRequest(f"The prompt is {chars} characters; at most {limits.max_prompt_chars} are "
                             "accepted per request.", param=param)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


OVER_CAPACITY = "app.over_capacity"  # scope extension: the --limit-concurrency the request is over
OVER_CAPACITY_RETRY_AFTER_SECONDS = 1


def over_capacity(scope: Scope) -> int | None:
    """The `--limit-concurrency` this request came over, as the server protocol marked it; None when under."""
    return (scope.get("extensions") or {}).get(OVER_CAPACITY)


# After a 413, what the client still sends is read and dropped for this long at most (see _linger).
LINGER_SECONDS = 2.0
LINGER_SILENCE_SECONDS = 0.25
LINGER_BYTES = 8 * 1024 * 1024


class RequestLimitsMiddleware:
    """Plain ASGI middleware enforcing `RequestLimits` on every HTTP request."""

    def __init__(self, app: ASGIApp, *, limits: RequestLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await _LimitedRequest(self.limits, scope, receive, send).run(self.app)


class _LimitedRequest:
    """One request under the limits: its counted receive and its guarded send."""

    def __init__(self, limits: RequestLimits, scope: Scope, receive: Receive, send: Send) -> None:
        self.limits = limits
        self.scope = scope
        self._receive = receive
        self._send = send
        self.deadline = asyncio.get_running_loop().time() + limits.body_read_timeout_seconds
        self.received = 0
        self.answered = False  # we answered (or gave up on) this request: the app's sends are dropped
        self.response_started = False
        length = _header(scope, b"content-length")
        self.content_length = int(length) if length is not None and length.isdigit() else None
        self.body_pending = bool(self.content_length) or (
            self.content_length is None and _header(scope, b"transfer-encoding") is not None)

    async def run(self, app: ASGIApp) -> None:
        over = over_capacity(self.scope)
        if over is not None:
            await self.reject(503, f"The server is at its limit of {over} open connections and requests in "
                                   f"flight; retry in {OVER_CAPACITY_RETRY_AFTER_SECONDS} s.", "overloaded",
                              type_="api_error", retry_after=OVER_CAPACITY_RETRY_AFTER_SECONDS)
            return
        head = sum(len(k) + len(v) for k, v in self.scope["headers"]) + len(self.scope.get("raw_path") or b"")
        head += len(self.scope.get("query_string") or b"")
        if head > self.limits.max_header_bytes:
            await self.reject(431, f"The request's headers are {head} bytes; at most "
                                   f"{self.limits.max_header_bytes} are accepted.", "headers_too_large")
        elif self.content_length is not None and self.content_length > self.limits.max_body_bytes:
            await self.reject(413, self._too_large_message(), "request_too_large")
        else:
            await app(self.scope, self.receive, self.send)

    def _too_large_message(self) -> str:
        return f"The request body is larger than {self.limits.max_body_bytes} bytes (MAX_BODY_BYTES)."

    async def receive(self) -> Message:
        if self.answered:
            return {"type": "http.disconnect"}
        if not self.body_pending:
            return await self._receive()
        # Plain asyncio rather than anyio: its cancel scopes cost ~0.05 ms a request (issue 14).
        try:
            async with asyncio.timeout_at(self.deadline):
                message: Message | None = await self._receive()
        except TimeoutError:
            message = None
        if message is None:
            await self.reject(408, f"The request body did not arrive within "
                                   f"{self.limits.body_read_timeout_seconds:g} seconds.", "request_timeout")
            return {"type": "http.disconnect"}
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limits.max_body_bytes:
                await self.reject(413, self._too_large_message(), "request_too_large")
                return {"type": "http.disconnect"}
            self.body_pending = bool(message.get("more_body", False))
        return message

    async def send(self, message: Message) -> None:
        if self.answered:
            return
        if message["type"] == "http.response.start":
            self.response_started = True
            if self.body_pending:
                # The body was not read in full: close rather than drain what the client still sends.
                message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
        await self._send(message)

    async def reject(self, status: int, message: str, code: str, *, type_: str = "invalid_request_error",
                     retry_after: int | None = None) -> None:
        """Answer `status` in the envelope and close the connection, unless a response has begun."""
        if self.answered:
            return
        self.answered = True
        if self.response_started:
            return  # too late for a status: the server closes the connection once the app returns
        body = error_bytes(message, type_=type_, code=code)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        if retry_after is not None:
            headers.append((b"retry-after", str(retry_after).encode()))
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        linger = status == 413 and self.body_pending
        await self._send({"type": "http.response.body", "body": body, "more_body": linger})
        if linger:
            await self._linger()
            await self._send({"type": "http.response.body", "body": b""})

    async def _linger(self) -> None:
        """Read and drop what the client is still sending, briefly, before the connection closes.

        Closing a socket with unread input makes the kernel reset the connection, and the
        reset can reach the client before the 413 it was sent (it then sees no answer at
        all). Like nginx's lingering close: bounded in time, bytes and silence.
        """
        drained = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINGER_SECONDS
        while drained < LINGER_BYTES and (left := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(min(left, LINGER_SILENCE_SECONDS)):
                    message = await self._receive()
            except TimeoutError:
                return  # silence
            if message["type"] != "http.request":
                return  # the client left
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                return
