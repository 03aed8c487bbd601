"""Server-sent-event framing: the one encoder every stream of the API uses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.entrypoints.http.json_codec import dump

DONE = b"data: [DONE]\n\n"


def event(data: Mapping[str, Any]) -> bytes:
    """One `data:` event holding `data` as compact JSON."""
    return b"data: " + dump(data) + b"\n\n"
