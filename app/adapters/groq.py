"""LLM provider adapter for Groq's OpenAI-compatible HTTP API, on httpx."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import httpx

from app.domain.errors import (
    DomainError,
    ModelRetired,
    UpstreamAuthFailed,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.domain.models import ChatMessage, ChatRequest, Chunk, Completion, Usage
from app.domain.streams import ChunkStream, open_chunks

log = logging.getLogger(__name__)

GROQ_BASE_URL = "https://api.groq.com/openai/v1"
MAX_STOP_SEQUENCES = 4  # Groq rejects more; Continue sends more
_SECRET_PATTERN = re.compile(r"gsk_[A-Za-z0-9]+|sk-[A-Za-z0-9]{8,}")
_RETIRED_CODES = {"model_decommissioned", "model_not_found"}


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
            raise UpstreamUnavailable(f"cannot reach Groq ({type(exc).__name__})", kind="connection") from exc
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
            raise UpstreamUnavailable("Groq returned a malformed response", kind="malformed") from exc

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
            raise UpstreamUnavailable(f"connection to Groq failed ({type(exc).__name__})",
                                      kind="connection") from exc

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
                raise UpstreamUnavailable("Groq sent a malformed stream event", kind="malformed") from exc
            if event == "error" or "error" in body:
                raise self._error(500, httpx.Headers(), json.dumps(body).encode())
            chunk = self._chunk(body, model)
            if chunk is not None:
                yield chunk
        raise UpstreamUnavailable("Groq's stream ended before [DONE]", kind="connection")

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

    def _scrub(self, text: str) -> str:
        text = text.replace(self._api_key, "[redacted]") if self._api_key else text
        return _SECRET_PATTERN.sub("[redacted]", text)

    def _error(self, status: int, headers: httpx.Headers, body: bytes) -> DomainError:
        """Translate a Groq failure into the domain error that says what to do next."""
        error: dict[str, Any] = {}
        try:
            parsed = json.loads(body)
            if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
                error = parsed["error"]
        except ValueError:
            pass
        message = self._scrub(str(error.get("message") or f"HTTP {status}"))
        code = error.get("code")
        if code in _RETIRED_CODES:
            return ModelRetired(message)
        if status == 401 or status == 403:
            return UpstreamAuthFailed("The upstream provider rejected the server's credentials "
                                      "(check GROQ_API_KEY on the server).")
        if status == 429 or status == 498 or status == 408 or status >= 500:
            retry_after = None
            try:
                retry_after = float(headers.get("retry-after", ""))
            except ValueError:
                pass
            detail = message if error else f"HTTP {status}" + ("" if body else ", empty body")
            kind = "rate_limited" if status in (429, 498) else "timeout" if status == 408 else "server_error"
            return UpstreamUnavailable(f"Groq is unavailable: {detail}", retry_after=retry_after, kind=kind)
        if status == 404:
            return ModelRetired(message)
        param = error.get("param")
        return UpstreamRejected(message, status=status if status in (400, 413, 422) else 400,
                                param=param if isinstance(param, str) else None,
                                code=code if isinstance(code, str) else None)
