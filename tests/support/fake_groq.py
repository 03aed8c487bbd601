"""A fake Groq server on a loopback port, speaking Groq's wire format.

Behaviour is scripted per request (`FakeGroq.script(...)`); with nothing
scripted it answers like Groq does. Facts: shared/reference/groq-wire-format.md.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.net import bound_socket

FAKE_GROQ_KEY = "gsk_FAKEtestKEY0123456789abcdefghij"


@dataclass
class Answer:
    """A normal answer (streamed in word chunks when the request streams)."""

    text: str = "Hello from fake Groq!"
    finish_reason: str = "stop"
    tool_calls: list[dict[str, Any]] | None = None


@dataclass
class Fail:
    """An HTTP error with a raw or JSON body and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Stall:
    """Hold the request open for `seconds` before answering normally."""

    seconds: float


@dataclass
class BrokenStream:
    """Stream `chunks` content chunks, then drop the connection without [DONE]."""

    chunks: int = 2


@dataclass
class StreamError:
    """Stream `chunks` content chunks, then Groq's mid-stream error.

    `form`: "event" (`event: error`), "data" (a plain `data: {"error": ...}`) or
    "x_groq" (a chunk whose `x_groq.error` says why the stream stopped).
    """

    chunks: int = 1
    form: str = "event"
    error: Any = None


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
    """Groq's 404 for an unknown or retired model."""
    return Fail(404, groq_error(f"The model `{model}` does not exist or you do not have access to it.",
                                code="model_not_found"))


class FakeGroq:
    """The server: start() in a background thread, stop() when done."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.retired_models: set[str] = set()
        self._script: deque[Any] = deque()
        self._lock = threading.Lock()
        self._sock = bound_socket()
        self.port = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/openai/v1"
        app = Starlette(routes=[
            Route("/openai/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/openai/v1/models", self._models, methods=["GET"]),
        ])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        daemon=True)

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
        """Queue behaviours for the next requests, one each, in order."""
        with self._lock:
            self._script.extend(behaviours)

    def reset(self) -> None:
        """Forget scripts, retired models and recorded requests."""
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.headers.clear()
            self.retired_models.clear()

    def _next(self) -> Any:
        with self._lock:
            return self._script.popleft() if self._script else Answer()

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": "openai/gpt-oss-120b", "object": "model", "created": 1754408224, "owned_by": "OpenAI",
             "active": True, "context_window": 131072, "max_completion_tokens": 65536}]})

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if request.headers.get("authorization") != f"Bearer {FAKE_GROQ_KEY}":
            return JSONResponse(groq_error("Invalid API Key", code="invalid_api_key"), status_code=401)
        model = body.get("model", "")
        if model in self.retired_models:
            behaviour: Any = model_not_found(model)
        else:
            behaviour = self._next()
        if isinstance(behaviour, Stall):
            await asyncio.sleep(behaviour.seconds)
            behaviour = Answer()
        if isinstance(behaviour, EchoKey):
            behaviour = self._echo(behaviour, request.headers.get("authorization", ""))
        if isinstance(behaviour, Fail):
            if behaviour.body is None:
                return Response(b"", status_code=behaviour.status, headers=behaviour.headers)
            if isinstance(behaviour.body, (bytes, str)):
                return Response(behaviour.body, status_code=behaviour.status, headers=behaviour.headers,
                                media_type="text/html")
            return JSONResponse(behaviour.body, status_code=behaviour.status, headers=behaviour.headers)
        headers = {"x-request-id": f"req_{uuid.uuid4().hex}", "x-ratelimit-remaining-requests": "99"}
        if isinstance(behaviour, SlowStream) and body.get("stream"):
            return StreamingResponse(self._slow_events(model, behaviour), media_type="text/event-stream",
                                     headers=headers)
        if body.get("stream"):
            return StreamingResponse(self._events(model, behaviour, body), media_type="text/event-stream",
                                     headers=headers)
        answer = behaviour if isinstance(behaviour, Answer) else Answer()
        message: dict[str, Any] = {"role": "assistant", "content": answer.text}
        if answer.tool_calls:
            message = {"role": "assistant", "tool_calls": answer.tool_calls}
        return JSONResponse({
            "id": f"chatcmpl-{uuid.uuid4()}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": answer.finish_reason}],
            "usage": {"queue_time": 0.01, "prompt_tokens": 12, "prompt_time": 0.001,
                      "completion_tokens": len(answer.text.split()), "completion_time": 0.01,
                      "total_tokens": 12 + len(answer.text.split()), "total_time": 0.011},
            "usage_breakdown": None, "system_fingerprint": "fp_fake", "x_groq": {"id": "req_fake"},
            "service_tier": "on_demand"}, headers=headers)

    @staticmethod
    def _echo(echo: EchoKey, authorization: str) -> Any:
        key = authorization.split()[-1]
        error = {"message": f"Rejected {authorization} ({key})", "type": authorization, "code": key,
                 "param": authorization, "failed_generation": key, "key": [key, {"nested": authorization}]}
        if echo.in_stream:
            return StreamError(chunks=1, form=echo.in_stream, error={"error": error})
        headers = {"x-echo": authorization, "x-request-id": key, "retry-after": key,
                   "x-ratelimit-reset-requests": key, "x-ratelimit-remaining-requests": key}
        return Fail(echo.status, {"error": error}, headers=headers)

    async def _events(self, model: str, behaviour: Any, body: dict[str, Any]):
        cid, created = f"chatcmpl-{uuid.uuid4()}", int(time.time())
        answer = behaviour if isinstance(behaviour, Answer) else Answer()
        words = [w + " " for w in answer.text.split(" ")]
        words[-1] = words[-1].rstrip()

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            data = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                    **extra}
            return f"data: {json.dumps(data)}\n\n"

        yield chunk({"role": "assistant", "content": ""}, x_groq={"id": "req_fake"})
        limit = behaviour.chunks if isinstance(behaviour, (BrokenStream, StreamError)) else len(words)
        for word in words[:limit]:
            await asyncio.sleep(0.005)
            yield chunk({"content": word})
        if isinstance(behaviour, BrokenStream):
            raise ConnectionResetError("fake Groq drops the stream")
        if isinstance(behaviour, StreamError):
            error = behaviour.error or groq_error("internal error mid-stream", type_="internal_server_error")
            if behaviour.form == "x_groq":
                yield chunk({}, "stop", x_groq={"id": "req_fake", "error": error["error"]["message"]})
                yield "data: [DONE]\n\n"
            else:
                yield ("event: error\n" if behaviour.form == "event" else "") + f"data: {json.dumps(error)}\n\n"
            return
        usage = {"prompt_tokens": 12, "completion_tokens": len(words), "total_tokens": 12 + len(words)}
        yield chunk({}, answer.finish_reason, x_groq={"id": "req_fake", "usage": usage}, usage=usage)
        yield "data: [DONE]\n\n"

    async def _slow_events(self, model: str, slow: SlowStream):
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
