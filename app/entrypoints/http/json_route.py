"""The route class of the JSON-body routes, and the short path the generation lane takes to them.

Every such route reads its body as `StrictJSONRequest` (pydantic-core's parse,
`json_codec.py`). A route whose endpoint takes only the `Request` and one body
model, guarded only by dependencies that take only the `Request`, also has a
`ShortPath`: a body sent as `application/json` that parses and validates is
handed to the endpoint directly, without FastAPI's per-request machinery
(dependency solving, parameter extraction, its content-type sniffing), which
cost about a tenth of a proxied request's CPU (issue 14). The generation lane
(`lane.py`) takes it; anything it does not take goes FastAPI's own way, so
errors are worded by the one place that words them.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic_core import from_json

from app.entrypoints.http.json_codec import StrictJSONRequest

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Guard = Callable[[Request], Awaitable[Any]]


class StrictJSONRoute(APIRoute):
    """A route whose handler reads its body as `StrictJSONRequest`."""

    def get_route_handler(self) -> Handler:
        """FastAPI's handler, given the strict request."""
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler


@dataclass(frozen=True, slots=True)
class ShortPath:
    """Calls an endpoint `(request, body)` with a body that validated, after its request-only guards."""

    endpoint: Callable[..., Awaitable[Response]]
    request_name: str
    body_name: str
    model: type[BaseModel]
    guards: list[Guard]

    @classmethod
    def of(cls, route: APIRoute) -> ShortPath | None:
        """The short path of `route`, or None when its endpoint or guards need FastAPI's machinery."""
        dependant = route.dependant
        if not _takes_only_request(dependant, allow_body=True) or len(dependant.body_params) != 1:
            return None
        model = dependant.body_params[0].field_info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or route.body_field is None:
            return None
        if route._embed_body_fields or not inspect.iscoroutinefunction(dependant.call):  # noqa: SLF001
            return None
        guards = [guard.call for guard in dependant.dependencies]
        if not all(_takes_only_request(guard, allow_body=False) and not guard.dependencies
                   and inspect.iscoroutinefunction(guard.call) for guard in dependant.dependencies):
            return None
        return cls(dependant.call, dependant.request_param_name or "", dependant.body_params[0].name, model,
                   guards)  # type: ignore[arg-type]

    async def parse(self, request: StrictJSONRequest) -> BaseModel | None:
        """The body, validated; None when it is not a valid `application/json` one (nothing else is done)."""
        content_type = request.headers.get("content-type")
        if content_type is None or content_type.partition(";")[0].strip().lower() != "application/json":
            return None
        try:
            body = await request.body()
        except Exception:  # noqa: BLE001 - e.g. the limits cut the body: FastAPI's path answers it as ever
            return None
        try:
            return self.model.model_validate(from_json(body, allow_inf_nan=False))
        except ValueError:  # malformed JSON, or pydantic's ValidationError: FastAPI's path says what is wrong
            return None

    async def run(self, request: Request, body: BaseModel) -> Response:
        """The endpoint's response to `body`, after the route's guards."""
        for guard in self.guards:
            await guard(request)
        return await self.endpoint(**{self.request_name: request, self.body_name: body})


def _takes_only_request(dependant: Dependant, *, allow_body: bool) -> bool:
    """True when `dependant` takes the `Request` (and with `allow_body`, body fields) and nothing else."""
    return (dependant.request_param_name is not None
            and not (dependant.path_params or dependant.query_params or dependant.header_params
                     or dependant.cookie_params or (dependant.body_params and not allow_body))
            and not (dependant.websocket_param_name or dependant.http_connection_param_name
                     or dependant.response_param_name or dependant.background_tasks_param_name
                     or dependant.security_scopes_param_name))
