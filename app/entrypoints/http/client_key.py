"""The client key is checked before the request body is read.

FastAPI reads and parses a body before any dependency runs, so a client
without a key could make the server read a large body just to be told 401.
This pure-ASGI middleware runs the same check as `require_client_key` (one
implementation: `auth.check_client_key`, brute-force damping included) on the
headers alone, for exactly the routes that depend on `require_client_key`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from app.domain.errors import DomainError
from app.entrypoints.http.auth import check_client_key, require_client_key
from app.entrypoints.http.errors import domain_error_response

log = logging.getLogger(__name__)

ANSWERS_KEPT = 1024  # (root path, path, method) -> guarded, remembered


def depends_on(dependant: Dependant, call: Any) -> bool:
    """True when `call` is among the dependencies of `dependant`, at any depth."""
    return any(dep.call is call or depends_on(dep, call) for dep in dependant.dependencies)


def served_routes(routes: list[BaseRoute]) -> Iterable[Any]:
    """Every route as served, included routers flattened (with the dependencies they add)."""
    # FastAPI >= 0.16x keeps included routers as lazy groups and flattens them with
    # iter_route_contexts (as its OpenAPI generator does); older versions list plain routes.
    flatten = getattr(routing, "iter_route_contexts", None)
    return flatten(routes) if flatten is not None else routes


class ClientKeyMiddleware:
    """Answers 401/429/503 from the headers, for the routes guarded by `require_client_key`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._guarded: list[Any] | None = None
        self._answers: dict[tuple[str, str, str], bool] = {}  # matching every route costs ~0.1 ms a request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._is_guarded(scope):
            await self.app(scope, receive, send)
            return
        peer = scope.get("client")
        try:
            await check_client_key(Headers(scope=scope), peer[0] if peer else None,
                                   scope.setdefault("state", {}), scope["app"].state.container)
        except DomainError as exc:
            status, body, headers = domain_error_response(exc)
            log.info("%s %s -> %d %s (body not read)", scope["method"], scope["path"], status,
                     type(exc).__name__)
            await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _is_guarded(self, scope: Scope) -> bool:
        where = (scope.get("root_path", ""), scope["path"], scope["method"])
        known = self._answers.get(where)
        if known is None:
            known = self._match(scope)
            if len(self._answers) >= ANSWERS_KEPT:  # paths come from clients: the memory stays bounded
                self._answers.clear()
            self._answers[where] = known
        return known

    def _match(self, scope: Scope) -> bool:
        if self._guarded is None:  # the app's routes are complete once it serves
            self._guarded = [route for route in served_routes(scope["app"].routes)
                             if (dependant := getattr(route, "dependant", None)) is not None
                             and depends_on(dependant, require_client_key)]
        return any(route.matches(scope)[0] is Match.FULL for route in self._guarded)


# Where a client key may go, as the OpenAPI document declares it (Swagger UI's "Authorize").
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "`Authorization: Bearer sk-...` (OpenAI clients)"},
    "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key", "description": "The seed's header"},
    "api-key": {"type": "apiKey", "in": "header", "name": "api-key", "description": "Azure-style clients"},
}


def declare_client_key(app: FastAPI) -> None:
    """Make `app`'s OpenAPI document say which operations need the client key, and where it goes.

    Declared in the document, not as header parameters of `require_client_key`: parameters
    would be looked up by FastAPI on every request.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()  # FastAPI keeps it as app.openapi_schema
            document.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            guarded = [route for route in served_routes(app.routes)
                       if (dependant := getattr(route, "dependant", None)) is not None
                       and depends_on(dependant, require_client_key)]
            for route in guarded:
                operations = document["paths"].get(route.path_format, {})
                for method in route.methods or ():
                    if (operation := operations.get(method.lower())) is not None:
                        operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
