"""The generation routes' lane: their requests go to the endpoint before Starlette's router sees them.

Starlette's router (every included router's routes matched in turn), FastAPI's
route wrapper and the exception layers around it cost about a tenth of a
proxied request's CPU (issue 14). This ASGI middleware, the innermost of ours
(so the limits and the client key have acted), takes a POST to a route with a
short path (`json_route.py`) straight to it:
- its errors go to the app's own exception handlers (`errors.py`), through
  Starlette's own ExceptionMiddleware, as they would behind the router;
- a body the short path does not take (not JSON, the wrong shape) is handed,
  as read, to the full stack, which answers it as it always did;
- with tracing on, or dependency overrides set, or under a root path, every
  request takes the full stack (FastAPI's request span names the route as the
  router selects it).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.entrypoints.http.client_key import served_routes
from app.entrypoints.http.json_codec import StrictJSONRequest
from app.entrypoints.http.json_route import ShortPath, StrictJSONRoute

_TAKEN = "app.lane"  # scope key: (route's short path, validated body) while the lane answers


class GenerationLane:
    """Answers POSTs to the short-path routes without the router; passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: dict[str, tuple[Any, ShortPath]] | None = None  # path -> (route, short path)
        self._answer: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path") \
                or "fastapi.telemetry" in scope:
            await self.app(scope, receive, send)
            return
        fastapi_app: FastAPI = scope["app"]
        routes = self._routes if self._routes is not None else self._build(fastapi_app)
        found = routes.get(scope["path"])
        if found is None or fastapi_app.dependency_overrides:
            await self.app(scope, receive, send)
            return
        route, short = found
        request = StrictJSONRequest(scope, receive)
        body = await short.parse(request)
        if body is None:  # FastAPI's path words what is wrong with it
            read = getattr(request, "_body", None)
            await self.app(scope, receive if read is None else _replaying(read, receive), send)
            return
        scope["route"] = route
        scope[_TAKEN] = (short, body)
        assert self._answer is not None
        await self._answer(scope, receive, send)

    def _build(self, app: FastAPI) -> dict[str, tuple[Any, ShortPath]]:
        """The short-path routes by path (the app's routes are complete once it serves)."""
        routes: dict[str, tuple[Any, ShortPath]] = {}
        for route in served_routes(app.routes):
            if isinstance(getattr(route, "original_route", route), StrictJSONRoute) \
                    and "POST" in (route.methods or ()) and "{" not in route.path:
                short = ShortPath.of(route)
                if short is not None:
                    routes.setdefault(route.path, (route, short))
        # The handlers Starlette's own ExceptionMiddleware gets (500 and Exception go to the outermost).
        handlers = {key: handler for key, handler in app.exception_handlers.items() if key not in (500, Exception)}
        self._answer = ExceptionMiddleware(_run, handlers=handlers)
        self._routes = routes
        return routes


async def _run(scope: Scope, receive: Receive, send: Send) -> None:
    short, body = scope.pop(_TAKEN)
    request = StrictJSONRequest(scope, receive)
    response = await short.run(request, body)
    await response(scope, receive, send)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` with the body that was already read given back first."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
