"""LLM provider adapter for Groq's OpenAI-compatible HTTP API, on httpx."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import httpx

from app.adapters.openai_compatible.errors import ErrorMapper, Scrubber
from app.domain.errors import DomainError, ModelRetired, UpstreamTimeout, UpstreamUnavailable
from app.domain.models import ChatMessage, ChatRequest, Chunk, Completion, Usage
from app.domain.streams import ChunkStream, open_chunks

log = logging.getLogger(__name__)

GROQ_BASE_URL = "https://api.groq.com/openai/v1"
MAX_STOP_SEQUENCES = 4  # Groq rejects more; Continue sends more


def _message_to_wire(message: ChatMessage) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = list(message.tool_calls)
        if not message.content:
            wire["content"] = None
    if message.tool_call_id:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _usage(data: dict[str, Any] | None) -> Usage | None:
    if not isinstance(data, dict):
        return None
    return Usage(prompt_tokens=int(data.get("prompt_tokens") or 0),
                 completion_tokens=int(data.get("completion_tokens") or 0))


class GroqProvider:
    """Sends chat requests to Groq; maps its failures to domain errors.

    `models` is ordered: a request that names no model tries them in turn,
    moving on when Groq says a model is retired or unknown.
    """

    name = "groq"

    def __init__(self, *, client: httpx.AsyncClient, api_key: str, models: Sequence[str],
                 base_url: str = GROQ_BASE_URL) -> None:
        if not models:
            raise ValueError("at least one Groq model is required")
        self._client = client
        self._api_key = api_key
        self._models = list(models)
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._errors = ErrorMapper(label="Groq", key_setting="GROQ_API_KEY", scrub=Scrubber(api_key))
        # httpcore's DEBUG trace prints response headers verbatim, and an upstream may echo the key there.
        trace = logging.getLogger("httpcore")
        trace.setLevel(max(trace.getEffectiveLevel(), logging.INFO))

    def model_ids(self) -> Sequence[str]:
        """The configured Groq models, preferred first."""
        return self._models

    async def complete(self, request: ChatRequest) -> Completion:
        """One chat completion from Groq."""
        for model in self._candidates(request):
            try:
                return await self._complete_with(model, request)
            except ModelRetired as exc:
                log.warning("groq model %s unavailable (%s); trying the next one", model, exc.message)
                last = exc
        raise last

    async def open_stream(self, request: ChatRequest) -> ChunkStream:
        """Groq's chunks as they arrive, opened once the first is in; closing the stream closes the HTTP response.

        A model is given up for the next one only while opening: once text went out,
        an error ends the stream.
        """
        for model in self._candidates(request):
            try:
                return await open_chunks(self._stream_with(model, request))
            except ModelRetired as exc:
                log.warning("groq model %s unavailable (%s); trying the next one", model, exc.message)
                last = exc
        raise last

    def _candidates(self, request: ChatRequest) -> list[str]:
        return [request.model] if request.model else self._models

    async def _complete_with(self, model: str, request: ChatRequest) -> Completion:
        try:
            response = await self._client.post(self._url, json=self._payload(model, request, stream=False),
                                               headers=self._headers())
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout("Groq did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"cannot reach Groq ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise self._error(response.status_code, response.headers, response.content)
        try:
            data = response.json()
            choice = data["choices"][0]
            message = choice.get("message") or {}
            return Completion(
                text=message.get("content"),
                model=str(data.get("model") or model),
                provider=self.name,
                finish_reason=choice.get("finish_reason") or "stop",
                usage=_usage(data.get("usage")) or Usage(0, 0),
                tool_calls=tuple(message["tool_calls"]) if message.get("tool_calls") else None,
            )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise UpstreamUnavailable("Groq returned a malformed response") from exc

    async def _stream_with(self, model: str, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        payload = self._payload(model, request, stream=True)
        try:
            async with self._client.stream("POST", self._url, json=payload,
                                           headers=self._headers()) as response:
                if response.status_code != 200:
                    raise self._error(response.status_code, response.headers, await response.aread())
                async for chunk in self._parse_events(response, model):
                    yield chunk
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout("Groq did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"connection to Groq failed ({type(exc).__name__})") from exc

    async def _parse_events(self, response: httpx.Response, model: str) -> AsyncGenerator[Chunk, None]:
        event = "message"
        async for line in response.aiter_lines():
            if not line:
                event = "message"
                continue
            if line.startswith("event:"):
                event = line[6:].strip()
                continue
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                body = json.loads(data)
            except ValueError as exc:
                raise UpstreamUnavailable("Groq sent a malformed stream event") from exc
            if event == "error" or (isinstance(body, dict) and "error" in body):
                raise self._errors.stream_error(body)
            chunk = self._chunk(body, model)
            if chunk is not None:
                yield chunk
        raise UpstreamUnavailable("Groq's stream ended before [DONE]")

    def _chunk(self, body: dict[str, Any], model: str) -> Chunk | None:
        choices = body.get("choices") or []
        usage = _usage(body.get("usage") or (body.get("x_groq") or {}).get("usage"))
        choice = choices[0] if choices else {}
        delta = choice.get("delta") or {}
        text = delta.get("content") or ""
        tool_calls = delta.get("tool_calls")
        finish = choice.get("finish_reason")
        if not text and not tool_calls and not finish and usage is None:
            return None
        return Chunk(model=str(body.get("model") or model), provider=self.name, text=text,
                     finish_reason=finish, usage=usage,
                     tool_calls=tuple(tool_calls) if tool_calls else None)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def _payload(self, model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        messages = list(request.messages)
        if request.prompt is not None:
            messages.append(ChatMessage(role="user", content=request.prompt))
        payload: dict[str, Any] = {"model": model, "messages": [_message_to_wire(m) for m in messages]}
        optional = {
            "max_completion_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            "stop": list(request.stop[:MAX_STOP_SEQUENCES]) or None,
            "tools": list(request.tools) if request.tools else None,
            "tool_choice": request.tool_choice,
            "response_format": request.response_format,
            "user": request.user,
        }
        payload.update({k: v for k, v in optional.items() if v is not None})
        if stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        return payload

    def _error(self, status: int, headers: httpx.Headers, body: bytes) -> DomainError:
        """Translate a Groq failure into the domain error that says what to do next."""
        return self._errors(status, headers, body)
