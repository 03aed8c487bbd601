"""Server-sent-event framing: the one encoder every stream of the API uses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.entrypoints.http.json_codec import dump

DONE = b"data: [DONE]\n\n"

# One event as OpenAPI 3.1 documents a `text/event-stream` body (its `schema` describes each event):
# `data` is JSON text, or `[DONE]` at the end; Responses API events are named.
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["data"],
    "properties": {"data": {"type": "string"}, "event": {"type": "string"}, "id": {"type": "string"},
                   "retry": {"type": "integer"}},
}


def event(data: Mapping[str, Any], *, name: str | None = None) -> bytes:
    """One event holding `data` as compact JSON; named (`event: <name>`) when `name` is given."""
    framed = b"data: " + dump(data) + b"\n\n"
    return b"event: " + name.encode() + b"\n" + framed if name else framed
