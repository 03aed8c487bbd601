"""Request bodies parsed as strict JSON, by pydantic-core instead of the standard library.

`json.loads` accepts what later breaks: a lone surrogate (`"\\ud800"`) becomes a
string that cannot be encoded again (a 500 on the way to Groq), and nesting is
bounded only by the interpreter's recursion limit. pydantic-core's parser
refuses lone surrogates, NaN and nesting deeper than 200 levels, and is faster;
its refusal reaches the client as a 400 (`errors.py`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic_core import from_json


class StrictJSONRequest(Request):
    """A request whose `json()` is pydantic-core's strict parse of the body."""

    async def json(self) -> Any:
        """The body as JSON; malformed input raises `json.JSONDecodeError` (FastAPI's 400 path)."""
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = from_json(body, allow_inf_nan=False)
            except ValueError as exc:
                raise json.JSONDecodeError(str(exc), "", 0) from None
        return self._json


class StrictJSONRoute(APIRoute):
    """A route whose handler reads its body as `StrictJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, given the strict request."""
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler
