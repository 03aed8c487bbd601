"""What the fake Groq does for one request: a normal answer, or one of the ways Groq (or a network) fails.

Facts: shared/reference/groq-wire-format.md. Queue them with `FakeGroq.script(...)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answer:
    """A normal answer (streamed in word chunks when the request streams).

    `reasoning` None: what a reasoning model (gpt-oss, Qwen) thinks by default,
    nothing for other models; "" never any.
    """

    text: str = "Hello from fake Groq!"
    finish_reason: str = "stop"
    tool_calls: list[dict[str, Any]] | None = None
    reasoning: str | None = None


@dataclass
class Fail:
    """An HTTP error with a raw or JSON body and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Stall:
    """Hold the request `seconds` before sending anything, then answer normally (or as `then` says)."""

    seconds: float
    then: Any = None


@dataclass
class Drip:
    """Send the normal answer (whole JSON or event stream) one byte every `interval` seconds."""

    interval: float = 2.0


@dataclass
class PauseMidStream:
    """Stream `chunks` content chunks, then nothing for `seconds`, then the rest."""

    chunks: int = 1
    seconds: float = 3.0


@dataclass
class BrokenStream:
    """Stream `chunks` content chunks, then drop the connection without [DONE].

    A request that does not stream gets half of its JSON body, then the connection dropped.
    """

    chunks: int = 2


@dataclass
class StreamError:
    """Stream `chunks` content chunks, then Groq's mid-stream error.

    `form`: "event" (`event: error`), "data" (a plain `data: {"error": ...}`) or
    "x_groq" (a final chunk, finish_reason and [DONE] included, whose
    `x_groq.error` says why the stream stopped early).
    """

    chunks: int = 1
    form: str = "event"
    error: Any = None


@dataclass
class EndsEarly:
    """Stream `chunks` content chunks and end the body cleanly, but without `missing`.

    `missing`: "done" (the finish chunk comes, no [DONE]) or "finish" ([DONE]
    comes, no chunk ever has a finish_reason).
    """

    chunks: int = 2
    missing: str = "done"


@dataclass
class Raw:
    """Answer 200 (or `status`) with this exact body, JSON or not."""

    body: bytes | str
    status: int = 200


@dataclass
class RawStream:
    """Answer 200 with an event stream made of exactly these events (each sent as `<event>\\n\\n`)."""

    events: list[str]


@dataclass
class Huge:
    """An answer `size` bytes long: one JSON body, or one event without an end."""

    size: int = 32 * 1024 * 1024


@dataclass
class SlowStream:
    """Stream `chunks` content chunks `interval` seconds apart; records how the stream ended.

    `closed` turns True when the stream ends in any way, `completed` only when
    every chunk and [DONE] went out (False: the client went away first).
    """

    chunks: int = 400
    interval: float = 0.05
    sent: int = 0
    completed: bool = False
    closed: bool = False


@dataclass
class EchoKey:
    """An error that echoes the Authorization header it was sent in every field and header.

    `in_stream`: "" answers `status` with the error; "event", "data" or "x_groq"
    streams one chunk and then reports the error that way.
    """

    status: int = 400
    in_stream: str = ""


def groq_error(message: str, *, code: str | None = None, type_: str = "invalid_request_error",
               param: str | None = None) -> dict[str, Any]:
    """Groq's error envelope."""
    error: dict[str, Any] = {"message": message, "type": type_}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return {"error": error}


def model_not_found(model: str) -> Fail:
    """Groq's 404 for an unknown or (since 2026) retired model."""
    return Fail(404, groq_error(f"The model `{model}` does not exist or you do not have access to it.",
                                code="model_not_found"))


def model_decommissioned(model: str) -> Fail:
    """Groq's older 400 for a retired model."""
    return Fail(400, groq_error(f"The model `{model}` has been decommissioned and is no longer supported. "
                                "Please refer to https://console.groq.com/docs/deprecations for a "
                                "recommendation on which model to use instead.", code="model_decommissioned"))


def rate_limited(*, kind: str = "tokens", retry_after: str = "7.66", reset_requests: str = "2m59.56s",
                 reset_tokens: str = "7.66s") -> Fail:
    """Groq's 429: the limit of `kind` (tokens or requests) used up, with its headers."""
    headers = {"retry-after": retry_after, "x-ratelimit-limit-requests": "1000",
               "x-ratelimit-limit-tokens": "8000",
               "x-ratelimit-remaining-requests": "0" if kind == "requests" else "997",
               "x-ratelimit-remaining-tokens": "0" if kind == "tokens" else "7500",
               "x-ratelimit-reset-requests": reset_requests, "x-ratelimit-reset-tokens": reset_tokens}
    return Fail(429, groq_error(f"Rate limit reached for model in organization on {kind} per minute "
                                f"(TPM): Limit 8000, Used 8000. Please try again in {reset_tokens}.",
                                code="rate_limit_exceeded", type_=kind), headers=headers)


def tool_call_answer(name: str, arguments: str, *, call_id: str = "call_fake0") -> Answer:
    """An answer that calls one function (streamed as Groq streams tool calls)."""
    return Answer(text="", finish_reason="tool_calls", tool_calls=[
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}])
