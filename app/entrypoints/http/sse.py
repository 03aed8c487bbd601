"""Server-sent-event framing: the one encoder every stream of the API uses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.entrypoints.http.json_codec import dump

DONE = b"data: [DONE]\n\n"


def event(data: Mapping[str, Any], *, name: str | None = None) -> bytes:
    """One event holding `data` as compact JSON; named (`event: <name>`) when `name` is given."""
    framed = b"data: " + dump(data) + b"\n\n"
    return b"event: " + name.encode() + b"\n" + framed if name else framed
