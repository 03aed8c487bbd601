"""The LLMProvider for any OpenAI-compatible chat API, on httpx: Groq, or an operator's inference server.

One class, configured per upstream (`Endpoint`): its name, URL, key and the
few ways servers differ. Deadlines are whole-attempt deadlines, not per-read
timeouts, so an upstream that drips one byte at a time is cut off like a
silent one; whatever is cut off or cancelled closes its connection at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from app.adapters.openai_compatible.errors import ErrorMapper, Scrubber
from app.adapters.openai_compatible.rate_limit_headers import rate_limits_from_headers
from app.adapters.openai_compatible.sse import SseReader
from app.adapters.openai_compatible.transport import UpstreamHttp, UpstreamResponse
from app.adapters.openai_compatible.wire import (
    Malformed,
    chunk_from_wire,
    completion_from_wire,
    parse_json,
    request_to_wire,
)
from app.domain.errors import UpstreamTimeout, UpstreamUnavailable
from app.domain.models import ChatRequest, Chunk, Completion, UpstreamModel
from app.domain.rate_limits import RateLimits
from app.domain.streams import ChunkStream, open_chunks

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024  # a whole answer; Groq's longest (65,536 tokens) is far below
MAX_EVENT_BYTES = 1024 * 1024  # one stream event


@dataclass(frozen=True, slots=True)
class Deadlines:
    """How long one attempt may take, in seconds."""

    total: float  # a whole answer: connect, headers and body
    first_chunk: float  # a stream: from sending the request to its first chunk
    idle: float  # a stream: the longest wait for the next chunk


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One OpenAI-compatible upstream and how it differs from the others."""

    name: str  # the provider name clients see (`groq`, `local`)
    label: str  # how messages name it ("Groq")
    base_url: str
    api_key: str
    key_setting: str  # the setting an operator fixes when the key is refused
    deadlines: Deadlines
    model: str | None = None  # sent when the request names none (None: the server's own default)
    model_prefix: str = ""  # prefixed to the ids clients see (`local/`)
    max_tokens_field: str = "max_completion_tokens"
    max_stop_sequences: int | None = None


RateLimitObserver = Callable[[str, RateLimits], None]


class OpenAICompatibleProvider:
    """Sends chat requests to one OpenAI-compatible upstream; maps its failures to domain errors."""

    def __init__(self, *, http: UpstreamHttp, endpoint: Endpoint,
                 on_rate_limits: RateLimitObserver | None = None) -> None:
        self._http = http
        self._endpoint = endpoint
        self._chat_url = http.url(endpoint.base_url, "/chat/completions")
        self._models_url = http.url(endpoint.base_url, "/models")
        self._errors = ErrorMapper(label=endpoint.label, key_setting=endpoint.key_setting,
                                   scrub=Scrubber(endpoint.api_key))
        self._on_rate_limits = on_rate_limits

    @property
    def name(self) -> str:
        """The provider name clients see."""
        return self._endpoint.name

    def model_ids(self) -> Sequence[str]:
        """The configured model, as clients name it (none when the server's default is used)."""
        model = self._endpoint.model
        return [self._endpoint.model_prefix + (model or "default")]

    @property
    def is_loaded(self) -> bool:
        """Always: the model lives in the upstream's process."""
        return True

    async def load(self) -> None:
        """Nothing to load here."""

    def close(self) -> None:
        """Nothing to release: the HTTP client is closed with the app."""

    async def complete(self, request: ChatRequest) -> Completion:
        """One whole answer, within the total deadline."""
        model = self._model_for(request)
        payload = self._payload(model, request, stream=False)
        total = self._endpoint.deadlines.total
        try:
            async with asyncio.timeout(total):
                async with self._http.open("POST", self._chat_url, json=payload,
                                           headers=self._headers()) as response:
                    self._observe(model, response)
                    body = await self._read(response)
        except TimeoutError:
            raise UpstreamTimeout(f"{self._endpoint.label} did not answer within {total:g} s") from None
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"{self._endpoint.label} did not answer in time ({type(exc).__name__})") \
                from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"cannot reach {self._endpoint.label} ({type(exc).__name__})",
                                      kind="connection") from None
        if response.status_code != 200:
            raise self._errors(response.status_code, response.headers, body)
        return completion_from_wire(body, sent_model=model, provider=self.name,
                                    model_prefix=self._endpoint.model_prefix)

    async def open_stream(self, request: ChatRequest) -> ChunkStream:
        """The answer's chunks, opened once the first is in (within the first-chunk deadline).

        Closing the stream closes the HTTP response. After it opened, a chunk
        that does not come within the idle deadline ends it with UpstreamTimeout.
        """
        model = self._model_for(request)
        first_chunk = self._endpoint.deadlines.first_chunk
        try:
            async with asyncio.timeout(first_chunk):
                return await open_chunks(self._chunks(model, request))
        except TimeoutError:
            raise UpstreamTimeout(f"{self._endpoint.label} sent no answer within {first_chunk:g} s") from None

    async def list_models(self) -> list[UpstreamModel]:
        """The upstream's `GET /models`: the models it serves now."""
        try:
            async with asyncio.timeout(self._endpoint.deadlines.total):
                async with self._http.open("GET", self._models_url, headers=self._headers()) as response:
                    body = await self._read(response)
        except (TimeoutError, httpx.HTTPError) as exc:
            raise UpstreamUnavailable(f"cannot list {self._endpoint.label}'s models ({type(exc).__name__})",
                                      kind="connection") from None
        if response.status_code != 200:
            raise self._errors(response.status_code, response.headers, body)
        data = parse_json(body, "the model list").get("data")
        if not isinstance(data, list):
            raise Malformed("the model list has no `data` array")
        return [model for entry in data if (model := _listed_model(entry)) is not None]

    async def _chunks(self, model: str | None, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        label, idle = self._endpoint.label, self._endpoint.deadlines.idle
        try:
            payload = self._payload(model, request, stream=True)
            async with self._http.open("POST", self._chat_url, json=payload,
                                       headers=self._headers()) as response:
                self._observe(model, response)
                if response.status_code != 200:
                    raise self._errors(response.status_code, response.headers, await self._read(response))
                events = SseReader(response.aiter_bytes(), max_event_bytes=MAX_EVENT_BYTES, label=label)
                ending = StreamEnding(label)
                while not ending.done:
                    # The idle deadline only where there is something to wait for: events that came
                    # in one read are taken without a timer each (issue 14: ~8% of a stream's CPU).
                    event = events.ready()
                    if event is None:
                        try:
                            async with asyncio.timeout(idle):
                                event = await events.next_event()
                        except TimeoutError:
                            raise UpstreamTimeout(f"{label} sent nothing for {idle:g} s mid-answer") from None
                    if event is None:
                        break
                    data = ending.read(event.name, event.data, self._errors)
                    if data is None:
                        continue
                    chunk = chunk_from_wire(data, sent_model=model, provider=self.name,
                                            model_prefix=self._endpoint.model_prefix)
                    if chunk is not None and not ending.holds(chunk):
                        yield chunk
                for chunk in ending.check():
                    yield chunk
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"{label} did not answer in time ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"the connection to {label} failed ({type(exc).__name__})",
                                      kind="connection") from None

    def _model_for(self, request: ChatRequest) -> str | None:
        model, prefix = request.model, self._endpoint.model_prefix
        if model and prefix and model.startswith(prefix):
            model = model[len(prefix):]
        return model or self._endpoint.model

    def _payload(self, model: str | None, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        return request_to_wire(model, request, stream=stream,
                               max_tokens_field=self._endpoint.max_tokens_field,
                               max_stop_sequences=self._endpoint.max_stop_sequences)

    def _headers(self) -> dict[str, str]:
        key = self._endpoint.api_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _observe(self, model: str | None, response: UpstreamResponse) -> None:
        if self._on_rate_limits is not None and model:
            limits = rate_limits_from_headers(response.headers, status=response.status_code)
            if limits is not None:
                self._on_rate_limits(model, limits)

    async def _read(self, response: UpstreamResponse) -> bytes:
        """The body, refused past MAX_BODY_BYTES (a hostile upstream must not fill our memory)."""
        body = bytearray()
        async for piece in response.aiter_bytes():
            body += piece
            if len(body) > MAX_BODY_BYTES:
                raise Malformed(f"{self._endpoint.label} sent an answer over {MAX_BODY_BYTES} bytes")
        return bytes(body)


class StreamEnding:
    """Tells a finished stream from a stopped one: `[DONE]` and a finish_reason are both needed.

    The finishing chunk (and the usage chunk after it) is held back until
    `[DONE]` confirms it, so a client never sees a finish that was not one.
    Errors reported inside the stream (an `error` event, an `error` member, or
    Groq's `x_groq.error`) end it with UpstreamUnavailable, so a truncated
    answer never reaches a client as a complete one.
    """

    def __init__(self, label: str) -> None:
        self._label = label
        self.done = False
        self._held: list[Chunk] = []

    def read(self, name: str, data: str, errors: ErrorMapper) -> dict[str, Any] | None:
        """The event's JSON object, or None for `[DONE]`; raises for errors and malformed events."""
        if data.strip() == "[DONE]":
            self.done = True
            return None
        body: Any
        try:
            body = parse_json(data, f"a stream event from {self._label}")
        except Malformed:
            if name == "error":
                raise errors.stream_error(None) from None
            raise
        if name == "error" or body.get("error"):
            raise errors.stream_error(body)
        x_groq = body.get("x_groq")
        if isinstance(x_groq, dict) and x_groq.get("error"):
            raise errors.stream_error(x_groq["error"])
        return body

    def holds(self, chunk: Chunk) -> bool:
        """Keep `chunk` back when it finishes the answer (or comes after that): only [DONE] confirms it."""
        if chunk.finish_reason is not None or self._held:
            self._held.append(chunk)
            return True
        return False

    def check(self) -> list[Chunk]:
        """The chunks held back, when the stream ended the way a complete answer ends; raises otherwise."""
        if not self.done:
            raise UpstreamUnavailable(f"{self._label}'s stream ended before [DONE]: "
                                      "the answer may be cut short", kind="connection")
        if not self._held:
            raise UpstreamUnavailable(f"{self._label}'s stream ended without a finish_reason: "
                                      "the answer may be cut short", kind="connection")
        return self._held


def _listed_model(entry: Any) -> UpstreamModel | None:
    """One entry of `GET /models`, or None when it is not a usable, active model."""
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or entry.get("active") is False:
        return None
    window = entry.get("context_window")
    return UpstreamModel(id=entry["id"],
                         context_window=window if isinstance(window, int) and window > 0 else None)
