"""A fake Groq server on a loopback port, speaking Groq's wire format as it is in late 2026.

Facts: shared/reference/groq-wire-format.md. It serves the 2026 model list
(the Llama 3 70B models answer 404 `model_not_found` or 400
`model_decommissioned`), reports rate limits in `x-ratelimit-*` headers (and
answers 429 once a limit is used up), validates parameters as Groq does,
returns reasoning for reasoning models, streams tool calls in pieces, ends
streams with the `x_groq.usage` chunk and, when asked, the `choices: []` usage
chunk. Behaviour is scripted per request (`FakeGroq.script(...)`, see
groq_behaviours); with nothing scripted it answers like Groq does.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.groq_behaviours import (
    Answer,
    BrokenStream,
    Drip,
    EchoKey,
    EndsEarly,
    Fail,
    Huge,
    PauseMidStream,
    Raw,
    RawStream,
    SlowStream,
    Stall,
    StreamError,
    groq_error,
    model_decommissioned,
    model_not_found,
    rate_limited,
    tool_call_answer,
)
from tests.support.net import bound_socket

__all__ = ["FAKE_GROQ_KEY", "FakeGroq", "Answer", "BrokenStream", "Drip", "EchoKey", "EndsEarly", "Fail",
           "Huge", "PauseMidStream", "Raw", "RawStream", "SlowStream", "Stall", "StreamError", "groq_error",
           "model_decommissioned", "model_not_found", "rate_limited", "tool_call_answer", "LIVE_2026", "RETIRED_2026",
           "ENTERPRISE_LLAMA"]

FAKE_GROQ_KEY = "gsk_FAKEtestKEY0123456789abcdefghij"

# GET /models in late 2026 (chat and audio models; `active` and `public_apps` as Groq sends them).
LIVE_2026: list[dict[str, Any]] = [
    {"id": "openai/gpt-oss-120b", "owned_by": "OpenAI", "created": 1754408224,
     "context_window": 131072, "max_completion_tokens": 65536},
    {"id": "openai/gpt-oss-20b", "owned_by": "OpenAI", "created": 1754407957,
     "context_window": 131072, "max_completion_tokens": 65536},
    {"id": "qwen/qwen3.8-27b", "owned_by": "Alibaba Cloud", "created": 1781740800,
     "context_window": 131042, "max_completion_tokens": 40960},
    {"id": "whisper-large-v3", "owned_by": "OpenAI", "created": 1693721698,
     "context_window": 448, "max_completion_tokens": 448},
    {"id": "whisper-large-v3-turbo", "owned_by": "OpenAI", "created": 1728413088,
     "context_window": 448, "max_completion_tokens": 448},
]
# Retired models and how each one answers now: the older ones 400, the 2026 ones 404.
RETIRED_2026 = {
    "llama3-70b-8192": "model_decommissioned",
    "llama-3.1-70b-versatile": "model_decommissioned",
    "llama-3.3-70b-versatile": "model_not_found",
    "llama-3.1-8b-instant": "model_not_found",
    "qwen/qwen3.6-27b": "model_not_found",
    "groq/compound": "model_not_found",
    "groq/compound-mini": "model_not_found",
}
# What an enterprise contract still gets (fake.serve(ENTERPRISE_LLAMA)).
ENTERPRISE_LLAMA = {"id": "llama-3.3-70b-versatile", "owned_by": "Meta", "created": 1733447754,
                    "context_window": 131072, "max_completion_tokens": 32768}
_REASONING_PREFIXES = ("openai/gpt-oss", "qwen/")
_NOT_CHAT = ("whisper",)
DEFAULT_REASONING = "The user greets me; a short friendly answer fits."


@dataclass
class Limits:
    """The organisation's rate limits as the headers report them; a used-up limit answers 429."""

    limit_requests: int = 14400
    limit_tokens: int = 250000
    remaining_requests: int = 14400
    remaining_tokens: int = 250000
    reset_requests: str = "2m59.56s"
    reset_tokens: str = "7.66s"

    def headers(self) -> dict[str, str]:
        """Groq's x-ratelimit-* headers."""
        return {"x-ratelimit-limit-requests": str(self.limit_requests),
                "x-ratelimit-limit-tokens": str(self.limit_tokens),
                "x-ratelimit-remaining-requests": str(max(0, self.remaining_requests)),
                "x-ratelimit-remaining-tokens": str(max(0, self.remaining_tokens)),
                "x-ratelimit-reset-requests": self.reset_requests,
                "x-ratelimit-reset-tokens": self.reset_tokens}


class FakeGroq:
    """The server: start() in a background thread, stop() when done."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.model_list_calls = 0
        self.abandoned = 0  # stalled requests whose caller closed the connection while it waited
        self._script: deque[Any] = deque()
        self._models_script: deque[Any] = deque()
        self._for_user: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._reset_state()
        self._sock = bound_socket()
        self.port = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/openai/v1"
        app = Starlette(routes=[
            Route("/openai/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/openai/v1/models", self._models, methods=["GET"]),
        ])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                                     timeout_graceful_shutdown=2))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        daemon=True)

    def _reset_state(self) -> None:
        self.live: dict[str, dict[str, Any]] = {m["id"]: copy.deepcopy(m) for m in LIVE_2026}
        self.retired: dict[str, str] = dict(RETIRED_2026)
        self._limits: dict[str, Limits] = {}

    def limits(self, model: str) -> Limits:
        """The limits of one model (Groq's limits are per organisation and model)."""
        return self._limits.setdefault(model, Limits())

    # --- control ------------------------------------------------------------------------------

    def start(self) -> FakeGroq:
        """Serve until stop(); returns once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake Groq did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Shut the server down."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def script(self, *behaviours: Any) -> None:
        """Queue behaviours for the next chat requests, one each, in order."""
        with self._lock:
            self._script.extend(behaviours)

    def script_for(self, user: str, behaviour: Any) -> None:
        """What the next chat request whose `user` field is `user` gets (the queue is for the others)."""
        with self._lock:
            self._for_user[user] = behaviour

    def script_models(self, *behaviours: Any) -> None:
        """Queue behaviours (Fail, Stall) for the next `GET /models` requests."""
        with self._lock:
            self._models_script.extend(behaviours)

    def serve(self, model: dict[str, Any]) -> None:
        """Make a model live (an enterprise account keeps llama-3.3-70b-versatile: ENTERPRISE_LLAMA)."""
        self.live[model["id"]] = copy.deepcopy(model)
        self.retired.pop(model["id"], None)

    def retire(self, model: str, code: str = "model_not_found") -> None:
        """Retire a model: it leaves the list and answers like Groq's retired models."""
        self.live.pop(model, None)
        self.retired[model] = code

    def reset(self) -> None:
        """Back to the 2026 list and fresh limits; forget scripts and recorded requests."""
        with self._lock:
            self._script.clear()
            self._models_script.clear()
            self._for_user.clear()
            self.requests.clear()
            self.headers.clear()
            self.model_list_calls = 0
            self.abandoned = 0
            self._reset_state()

    def chat_models(self) -> list[str]:
        """The models the gateway was asked to chat with, in order."""
        return [r.get("model", "") for r in self.requests]

    def _next(self, queue: deque[Any], default: Any) -> Any:
        with self._lock:
            return queue.popleft() if queue else default

    # --- GET /models --------------------------------------------------------------------------

    async def _models(self, request: Request) -> Response:
        self.model_list_calls += 1
        if request.headers.get("authorization") != f"Bearer {FAKE_GROQ_KEY}":
            return JSONResponse(groq_error("Invalid API Key", code="invalid_api_key"), status_code=401)
        behaviour = self._next(self._models_script, None)
        if isinstance(behaviour, Stall):
            await asyncio.sleep(behaviour.seconds)
        if isinstance(behaviour, (Fail, Raw)):
            return _failure(behaviour)
        return JSONResponse({"object": "list", "data": [
            {**m, "object": "model", "active": True, "public_apps": None} for m in self.live.values()]})

    # --- POST /chat/completions ---------------------------------------------------------------

    async def _chat(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse(groq_error("Invalid JSON body"), status_code=400)
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        authorization = request.headers.get("authorization", "")
        if authorization != f"Bearer {FAKE_GROQ_KEY}":
            return JSONResponse(groq_error("Invalid API Key", code="invalid_api_key"), status_code=401)
        model = body.get("model", "")
        with self._lock:
            chosen = self._for_user.pop(body.get("user"), None) if isinstance(body.get("user"), str) else None
        behaviour = self._refusal(model, body) or chosen or self._next(self._script, Answer())
        if isinstance(behaviour, Stall):
            if await _left_within(request, behaviour.seconds):
                self.abandoned += 1
                return Response(status_code=499)
            behaviour = behaviour.then or Answer()
        if isinstance(behaviour, EchoKey):
            behaviour = _echo(behaviour, authorization)
        if isinstance(behaviour, (Fail, Raw)):
            return _failure(behaviour, self.limits(model).headers())
        headers = {"x-request-id": f"req_{uuid.uuid4().hex}", **self._spend(model)}
        if isinstance(behaviour, Huge):
            return StreamingResponse(_huge(behaviour.size, stream=bool(body.get("stream"))), headers=headers,
                                     media_type="text/event-stream" if body.get("stream") else "application/json")
        if isinstance(behaviour, RawStream):
            return StreamingResponse(_raw_events(behaviour.events), media_type="text/event-stream", headers=headers)
        if body.get("stream"):
            events = _slow_events(model, behaviour) if isinstance(behaviour, SlowStream) \
                else self._events(model, behaviour, body)
            if isinstance(behaviour, Drip):
                events = _drip(_joined(self._events(model, Answer(), body)), behaviour.interval)
            return StreamingResponse(events, media_type="text/event-stream", headers=headers)
        answer = behaviour if isinstance(behaviour, Answer) else Answer()
        completion = self._completion(model, answer, body)
        if isinstance(behaviour, Drip):
            return StreamingResponse(_drip(_one(json.dumps(completion)), behaviour.interval),
                                     media_type="application/json", headers=headers)
        if isinstance(behaviour, BrokenStream):
            return StreamingResponse(_cut(json.dumps(completion).encode()), media_type="application/json",
                                     headers=headers)
        # json.dumps escapes what UTF-8 cannot carry (a lone surrogate), as a JSON encoder may.
        return Response(json.dumps(completion), media_type="application/json", headers=headers)

    def _refusal(self, model: str, body: dict[str, Any]) -> Fail | None:
        """What Groq answers before running anything: retired or unknown model, bad parameter, used-up limit."""
        if model in self.retired:
            return model_decommissioned(model) if self.retired[model] == "model_decommissioned" \
                else model_not_found(model)
        if model not in self.live:
            return model_not_found(model)
        if any(part in model for part in _NOT_CHAT):
            return Fail(400, groq_error(f"The model `{model}` does not support chat completions",
                                        param="model"))
        for param in ("logprobs", "logit_bias", "top_logprobs"):
            if body.get(param) is not None:
                return Fail(400, groq_error(f"`{param}` is not supported with this model", param=param))
        if body.get("n", 1) != 1:
            return Fail(400, groq_error("'n' : number must be at most 1", param="n"))
        if isinstance(body.get("stop"), list) and len(body["stop"]) > 4:
            return Fail(400, groq_error("'stop' : maximum 4 items allowed", param="stop"))
        if body.get("reasoning_effort") == "none" and model == "openai/gpt-oss-120b":
            return Fail(400, groq_error("`reasoning_effort` value `none` is not supported with this model",
                                        param="reasoning_effort"))
        limits = self.limits(model)
        if limits.remaining_requests <= 0:
            return rate_limited(kind="requests", retry_after="180", reset_requests=limits.reset_requests)
        if limits.remaining_tokens <= 0:
            return rate_limited(kind="tokens", reset_tokens=limits.reset_tokens)
        return None

    def _spend(self, model: str) -> dict[str, str]:
        """Count one request (and its tokens) against the model's limits; the headers after it."""
        limits = self.limits(model)
        limits.remaining_requests -= 1
        limits.remaining_tokens -= 20
        return limits.headers()

    def _reasoning(self, model: str, answer: Answer, body: dict[str, Any]) -> tuple[str, str]:
        """(reasoning for the `reasoning` field, text) as the request's reasoning options ask."""
        reasoning = answer.reasoning
        if reasoning is None:
            reasoning = DEFAULT_REASONING if model.startswith(_REASONING_PREFIXES) else ""
        if not reasoning or body.get("reasoning_format") == "hidden" or body.get("include_reasoning") is False:
            return "", answer.text
        if body.get("reasoning_format") == "raw":
            return "", f"<think>{reasoning}</think>{answer.text}"
        return reasoning, answer.text

    def _completion(self, model: str, answer: Answer, body: dict[str, Any]) -> dict[str, Any]:
        reasoning, text = self._reasoning(model, answer, body)
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if reasoning:
            message["reasoning"] = reasoning
        if answer.tool_calls:
            message = {"role": "assistant", "tool_calls": answer.tool_calls}
        completion_tokens = len(text.split()) + len(reasoning.split())
        return {
            "id": f"chatcmpl-{uuid.uuid4()}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": answer.finish_reason}],
            "usage": {"queue_time": 0.01, "prompt_tokens": 12, "prompt_time": 0.001,
                      "completion_tokens": completion_tokens, "completion_time": 0.01,
                      "total_tokens": 12 + completion_tokens, "total_time": 0.011},
            "usage_breakdown": None, "system_fingerprint": "fp_fake",
            "x_groq": {"id": f"req_{uuid.uuid4().hex}", "seed": 1790130236}, "service_tier": "on_demand"}

    async def _events(self, model: str, behaviour: Any, body: dict[str, Any]) -> AsyncIterator[str]:
        cid, created, request_id = f"chatcmpl-{uuid.uuid4()}", int(time.time()), f"req_{uuid.uuid4().hex}"
        answer = behaviour if isinstance(behaviour, Answer) else Answer(reasoning="")  # faults: text only
        reasoning, text = self._reasoning(model, answer, body)
        words = [w + " " for w in text.split(" ")]
        words[-1] = words[-1].rstrip()

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            data = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
            return f"data: {json.dumps(data)}\n\n"

        yield chunk({"role": "assistant", "content": ""}, x_groq={"id": request_id})
        pieces = 0
        for word in reasoning.split(" ") if reasoning else []:
            pieces += 1
            yield chunk({"reasoning": word + " "})
        limit = behaviour.chunks if isinstance(behaviour, (BrokenStream, StreamError, EndsEarly, PauseMidStream)) \
            else len(words)
        for word in [] if answer.tool_calls else words[:limit]:
            await asyncio.sleep(0.005)
            pieces += 1
            yield chunk({"content": word})
        for piece in _tool_call_pieces(answer.tool_calls or []):
            pieces += 1
            yield chunk({"tool_calls": [piece]})
        if isinstance(behaviour, BrokenStream):
            raise ConnectionResetError("fake Groq drops the stream")
        if isinstance(behaviour, StreamError):
            for event in _stream_error(behaviour, chunk, request_id):
                yield event
            return
        if isinstance(behaviour, PauseMidStream):
            await asyncio.sleep(behaviour.seconds)
            for word in words[limit:]:
                pieces += 1
                yield chunk({"content": word})
        usage = {"prompt_tokens": 12, "completion_tokens": pieces, "total_tokens": 12 + pieces}
        finish = None if isinstance(behaviour, EndsEarly) and behaviour.missing == "finish" else answer.finish_reason
        yield chunk({}, finish, x_groq={"id": request_id, "usage": usage}, usage=usage)
        if (body.get("stream_options") or {}).get("include_usage"):  # the OpenAI form: a last, choice-less chunk
            last = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [], "usage": usage, "x_groq": {"id": request_id}}
            yield f"data: {json.dumps(last)}\n\n"
        if not (isinstance(behaviour, EndsEarly) and behaviour.missing == "done"):
            yield "data: [DONE]\n\n"


def _stream_error(behaviour: StreamError, chunk: Any, request_id: str) -> list[str]:
    error = behaviour.error or groq_error("internal error mid-stream", type_="internal_server_error")
    if behaviour.form == "x_groq":
        return [chunk({}, "stop", x_groq={"id": request_id, "error": error["error"]["message"]}), "data: [DONE]\n\n"]
    return [("event: error\n" if behaviour.form == "event" else "") + f"data: {json.dumps(error)}\n\n"]


def _tool_call_pieces(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Streamed tool calls as Groq sends them: the first piece names the call, later ones add arguments."""
    pieces = []
    for index, call in enumerate(calls):
        arguments = call["function"].get("arguments", "")
        pieces.append({"index": index, "id": call.get("id", f"call_{index}"), "type": "function",
                       "function": {"name": call["function"]["name"], "arguments": ""}})
        half = len(arguments) // 2
        pieces += [{"index": index, "function": {"arguments": part}} for part in (arguments[:half], arguments[half:])]
    return pieces


def _echo(echo: EchoKey, authorization: str) -> Any:
    key = authorization.split()[-1]
    error = {"message": f"Rejected {authorization} ({key})", "type": authorization, "code": key,
             "param": authorization, "failed_generation": key, "key": [key, {"nested": authorization}]}
    if echo.in_stream:
        return StreamError(chunks=1, form=echo.in_stream, error={"error": error})
    headers = {"x-echo": authorization, "x-request-id": key, "retry-after": key,
               "x-ratelimit-reset-requests": key, "x-ratelimit-remaining-requests": key}
    return Fail(echo.status, {"error": error}, headers=headers)


def _failure(behaviour: Fail | Raw, limit_headers: dict[str, str] | None = None) -> Response:
    headers = {"x-request-id": f"req_{uuid.uuid4().hex}", **(limit_headers or {})}
    if isinstance(behaviour, Raw):
        return Response(behaviour.body, status_code=behaviour.status, headers=headers, media_type="application/json")
    headers.update(behaviour.headers)
    if behaviour.body is None:
        return Response(b"", status_code=behaviour.status, headers=headers)
    if isinstance(behaviour.body, (bytes, str)):
        return Response(behaviour.body, status_code=behaviour.status, headers=headers, media_type="text/html")
    return JSONResponse(behaviour.body, status_code=behaviour.status, headers=headers)


async def _left_within(request: Request, seconds: float) -> bool:
    """Wait `seconds`, watching the connection: True as soon as the caller closes it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return True
        await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    return await request.is_disconnected()


async def _cut(body: bytes) -> AsyncIterator[bytes]:
    """Half of `body`, then the connection dropped (no Content-Length: the client cannot know before)."""
    yield body[: len(body) // 2]
    await asyncio.sleep(0.01)
    raise ConnectionResetError("fake Groq drops the body")


async def _one(text: str) -> AsyncIterator[str]:
    yield text


async def _joined(events: AsyncIterator[str]) -> AsyncIterator[str]:
    yield "".join([event async for event in events])


async def _drip(parts: AsyncIterator[str], interval: float) -> AsyncIterator[bytes]:
    """The body one byte at a time, `interval` seconds apart."""
    async for part in parts:
        for byte in part.encode():
            yield bytes([byte])
            await asyncio.sleep(interval)


async def _raw_events(events: list[str]) -> AsyncIterator[str]:
    for event in events:
        yield event + "\n\n"


async def _huge(size: int, *, stream: bool) -> AsyncIterator[bytes]:
    yield b'data: {"choices":[{"delta":{"content":"' if stream else b'{"choices":[{"message":{"content":"'
    block = b"x" * 65536
    for _ in range(size // len(block)):
        yield block
        await asyncio.sleep(0)


async def _slow_events(model: str, slow: SlowStream) -> AsyncIterator[str]:
    base = {"id": f"chatcmpl-{uuid.uuid4()}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model, "system_fingerprint": "fp_fake"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return f"data: {json.dumps({**base, 'choices': [choice]})}\n\n"

    try:
        yield chunk({"role": "assistant", "content": ""})
        for i in range(slow.chunks):
            yield chunk({"content": f"w{i} "})
            slow.sent += 1
            await asyncio.sleep(slow.interval)
        yield chunk({}, "length")
        yield "data: [DONE]\n\n"
        slow.completed = True
    finally:
        slow.closed = True
