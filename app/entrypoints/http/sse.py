"""Server-sent-event framing: the one encoder every stream of the API uses."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

DONE = b"data: [DONE]\n\n"


def event(data: BaseModel) -> bytes:
    """One `data:` event holding a wire model as compact JSON."""
    return b"data: " + data.model_dump_json().encode() + b"\n\n"


def json_event(data: dict[str, Any]) -> bytes:
    """One `data:` event holding a plain JSON object (the error envelope)."""
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
