"""The answer to a request over uvicorn's `--limit-concurrency`: 503 in OpenAI's envelope, with Retry-After.

uvicorn's own answer is a plain-text "Service Unavailable" with no Retry-After, so an
OpenAI SDK shows those two words as the error and retries at its own pace. This one
says what happened, and when to come back: the SDKs wait `Retry-After` before their
retry. Like uvicorn's, it closes the connection, which frees one of the places counted.
"""

from __future__ import annotations

from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope

from app.entrypoints.http.errors import error_bytes

RETRY_AFTER_SECONDS = 1


class OverCapacity:
    """An ASGI app answering every request 503 `overloaded`, naming the limit that was reached."""

    def __init__(self, limit: int) -> None:
        body = error_bytes(f"The server is at its limit of {limit} open connections and requests in flight; "
                           f"retry in {RETRY_AFTER_SECONDS} s.", type_="api_error", code="overloaded")
        self._start = {"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(RETRY_AFTER_SECONDS).encode()), (b"connection", b"close")]}
        self._body = {"type": "http.response.body", "body": body, "more_body": False}

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        await send(self._start)  # type: ignore[arg-type]
        await send(self._body)  # type: ignore[arg-type]
