"""Reading OpenAI's server-sent events: the JSON payload of each `data:` line, until `[DONE]`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from app.entrypoints.cli.errors import CliError


def sse_payloads(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Each event's JSON object; an error event (sent after a stream started) raises CliError."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, comments, `event:` lines
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            payload = json.loads(data)
        except json.JSONDecodeError:
            raise CliError("the server sent a malformed stream event") from None
        if not isinstance(payload, dict):
            continue
        error = payload.get("error")
        if isinstance(error, dict):
            raise CliError(f"the answer broke off: {error.get('message') or 'error event in the stream'}")
        yield payload
