"""Per-request observation as pure ASGI: request id, overhead header, time to first token, the access line.

Pure ASGI rather than BaseHTTPMiddleware so streams pass through untouched and
the request's facts (app/domain/observation.py) live in the same context as
the endpoint that fills them.
"""

from __future__ import annotations

import logging
import re
from time import perf_counter
from typing import Any
from urllib.parse import quote

from opentelemetry import trace
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.domain.observation import RequestFacts, bind_facts, release_facts
from app.entrypoints.http.client_key import served_routes
from app.entrypoints.http.ids import random_hex
from app.entrypoints.http.limits import over_capacity
from app.ports.telemetry import Telemetry

REQUEST_ID_HEADER = b"x-request-id"
OVERHEAD_HEADER = b"x-gateway-overhead-ms"
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})  # logged at debug level when they succeed
UNMEASURED_PATHS = frozenset({"/metrics"})  # scrapes would swamp the request metrics

_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
access_log = logging.getLogger("app.access")


def request_id_of(scope: Scope) -> str:
    """The client's `x-request-id` when it is a short plain token, else a new one (nothing else reaches a log)."""
    for name, value in scope.get("headers") or ():
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _VALID_REQUEST_ID.fullmatch(text):
                return text
            break
    return random_hex()


def route_of(scope: Scope) -> str | None:
    """The route template that served the request, or would have: the limits and the client-key middleware
    answer 413 or 401 before routing, and those requests still count under their route (None: no route matched)."""
    route = scope.get("route")
    if route is None and "app" in scope:
        route = next((r for r in served_routes(scope["app"].routes) if r.matches(scope)[0] is Match.FULL), None)
    return getattr(route, "path", None)


class ObservabilityMiddleware:
    """Gives each HTTP request its facts and id, and reports what it did when it ends (metrics, access line).

    `x-gateway-overhead-ms`, on every response that called a model, is the time
    until the response started minus the time spent waiting for the upstream or
    the local model (for a stream: up to its first chunk).
    """

    def __init__(self, app: ASGIApp, *, telemetry: Telemetry, json_lines: bool, log_prompts: bool) -> None:
        self.app = app
        self._telemetry = telemetry
        self._json_lines = json_lines
        self._log_prompts = log_prompts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        facts = RequestFacts(request_id=request_id_of(scope), record_prompt=self._log_prompts)
        response: dict[str, Any] = {"status": 500, "stream": False, "overhead": None}

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._response_started(message, facts, response, perf_counter() - started)
            await send(message)

        token = bind_facts(facts)
        try:
            await self.app(scope, receive, send_observed)
        finally:
            release_facts(token)
            elapsed = perf_counter() - started
            if scope.get("path") not in UNMEASURED_PATHS:
                self._telemetry.http_request(method=scope.get("method", ""), route=route_of(scope),
                                             status=response["status"], seconds=elapsed)
            if over_capacity(scope) is not None:
                self._telemetry.request_shed()  # answered 503 by the limits (limits.py)
            self._log(scope, facts, response, elapsed)

    def _response_started(self, message: Message, facts: RequestFacts, response: dict[str, Any],
                          elapsed: float) -> None:
        # The raw list, not MutableHeaders: no header here is set twice by the app (issue 14: ~1%).
        headers = message["headers"] = [*message.get("headers", ()),
                                        (REQUEST_ID_HEADER, facts.request_id.encode("latin-1"))]
        response["status"] = message["status"]
        if facts.provider_calls:
            response["overhead"] = max(0.0, elapsed - facts.provider_seconds)
            headers.append((OVERHEAD_HEADER, b"%.2f" % (response["overhead"] * 1000)))
        content_type = next((value for name, value in headers if name == b"content-type"), b"")
        response["stream"] = content_type.startswith(b"text/event-stream")
        if response["stream"] and message["status"] == 200 and facts.provider and facts.model:
            self._telemetry.time_to_first_token(provider=facts.provider, model=facts.model, seconds=elapsed)

    def _log(self, scope: Scope, facts: RequestFacts, response: dict[str, Any], elapsed: float) -> None:
        path = scope.get("path", "")
        level = logging.DEBUG if path in PROBES and response["status"] < 400 else logging.INFO
        if not access_log.isEnabledFor(level):
            return
        if not self._json_lines:
            self._log_text(scope, facts, response, elapsed, level)
            return
        fields: dict[str, Any] = {
            "request_id": facts.request_id,
            "method": scope.get("method"),
            "route": route_of(scope),
            "path": path,
            "status": response["status"],
            "latency_ms": round(elapsed * 1000, 2),
            "provider": facts.provider,
            "model": facts.model,
            "upstream_ms": round(facts.provider_seconds * 1000, 2) if facts.provider_calls else None,
            "overhead_ms": None if response["overhead"] is None else round(response["overhead"] * 1000, 2),
            "input_tokens": facts.input_tokens if facts.provider else None,
            "output_tokens": facts.output_tokens if facts.provider else None,
            "fallback_reason": facts.fallback_reason,
            "stream": response["stream"],
        }
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            fields["trace_id"] = format(span_context.trace_id, "032x")
        if facts.prompt is not None:
            fields["prompt"] = facts.prompt
        access_log.log(level, "request", extra={"fields": fields})

    @staticmethod
    def _log_text(scope: Scope, facts: RequestFacts, response: dict[str, Any], elapsed: float,
                  level: int) -> None:
        """uvicorn's access line, written after the response rather than before it, with what the request did.

        The path is quoted as uvicorn quotes it; the query string is left out (it may carry a key).
        """
        client = scope.get("client")
        served = f" {facts.provider} {facts.model}" if facts.provider else ""
        access_log.log(level, '%s - "%s %s HTTP/%s" %d %.1f ms%s req %s',
                       f"{client[0]}:{client[1]}" if client else "-", scope.get("method"),
                       quote(scope.get("root_path", "") + scope.get("path", "")), scope.get("http_version"),
                       response["status"], elapsed * 1000, served, facts.request_id)
        if facts.prompt is not None:  # LOG_PROMPTS in the text form: the prompt on its own line
            access_log.info("request %s prompt: %s", facts.request_id, facts.prompt)
