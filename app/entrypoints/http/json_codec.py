"""JSON in and out at the edge, by pydantic-core rather than the standard library.

In: `json.loads` accepts what later breaks: a lone surrogate (`"\\ud800"`) becomes
a string that cannot be encoded again (a 500 on the way to Groq), and nesting
is bounded only by the interpreter's recursion limit. pydantic-core's parser
refuses lone surrogates, NaN and nesting deeper than 200 levels, and is
faster; its refusal reaches the client as a 400 (`errors.py`).

Out: `dump` writes wire models and plain data as JSON bytes in one pass (about
five times as fast as `json.dumps`); a lone surrogate in a provider's text
becomes U+FFFD instead of failing the answer.
"""

from __future__ import annotations

import json
from typing import Any

import re

from fastapi import Request
from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, from_json, to_json

# A Python str holds a surrogate pair as one code point, so any surrogate left in one is lone.
_SURROGATE = re.compile("[\ud800-\udfff]")


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


def dump(value: Any) -> bytes:
    """JSON bytes of a wire model or plain data (a lone surrogate in a string is sent as U+FFFD)."""
    try:
        return to_json(value)
    except PydanticSerializationError:
        data = value.model_dump() if isinstance(value, BaseModel) else value
        return to_json(_scrubbed(data))


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {key: _scrubbed(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrubbed(item) for item in value]
    return value
