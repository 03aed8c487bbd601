"""An upstream's failure as the domain error that says what to do next, with no secret left in it.

Everything an upstream sends back may echo what it was sent, the server's key
included (`Authorization: Bearer gsk_...`). So every field that can reach a
client or a log line is either scrubbed (the message) or kept only when it has
the shape it should have (`param`, `code`); anything else is dropped.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from app.domain.errors import (
    DomainError,
    ModelRetired,
    UpstreamAuthFailed,
    UpstreamRejected,
    UpstreamUnavailable,
)

REDACTED = "[redacted]"
MAX_MESSAGE_CHARS = 500
# Longest retry-after believed; a larger (or infinite) one is this (a client's Retry-After stays sane).
MAX_RETRY_AFTER_SECONDS = 3600.0
# Key-like tokens: Groq keys, OpenAI-style keys (our own client keys too) and bearer credentials.
_SECRET_PATTERNS = re.compile("|".join([
    r"gsk_[A-Za-z0-9_\-]+", r"sk-[A-Za-z0-9_\-]+", r"(?i:bearer)\s+[^\s\"',;]+",
    r"(?i:api[-_]?key)[\"']?\s*[:=]\s*[\"']?[^\s\"',;]+"]))
_PARAM_SHAPE = re.compile(r"[A-Za-z0-9_.\[\]\-]{1,100}")
_CODE_SHAPE = re.compile(r"[a-z0-9_]{1,64}")
_RETIRED_CODES = {"model_decommissioned", "model_not_found"}
# Statuses that mean "not now": worth a retry or another provider.
_UNAVAILABLE_STATUSES = {408, 409, 424, 429, 498}


class Scrubber:
    """Removes the server's own key and anything key-shaped from upstream text."""

    def __init__(self, *secrets: str) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """`text` with every secret replaced, control characters flattened and length capped."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = _SECRET_PATTERNS.sub(REDACTED, text)
        text = "".join(c if c.isprintable() else " " for c in text)
        return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "…"


def shaped(value: Any, shape: re.Pattern[str], scrub: Scrubber) -> str | None:
    """`value` when it is a short string of the expected shape that no scrubbing would change; else None."""
    if isinstance(value, str) and shape.fullmatch(value) and scrub(value) == value:
        return value
    return None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `retry-after` header: finite, not negative, capped; None when absent or unreadable."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if math.isnan(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_SECONDS)  # inf and 1e308 included


def error_fields(body: bytes) -> dict[str, Any]:
    """The `error` object of an OpenAI error envelope, or {} when the body is not one."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        return parsed["error"]
    return {}


class ErrorMapper:
    """Turns an upstream's HTTP failure into a domain error; `label` names the upstream in messages."""

    def __init__(self, *, label: str, key_setting: str, scrub: Scrubber) -> None:
        self._label = label
        self._key_setting = key_setting
        self.scrub = scrub

    def __call__(self, status: int, headers: Mapping[str, str], body: bytes) -> DomainError:
        """The domain error for an answer with `status`, `headers` and `body` (not 200)."""
        error = error_fields(body)
        raw_message = error.get("message")
        message = self.scrub(raw_message) if isinstance(raw_message, str) and raw_message.strip() \
            else f"HTTP {status}" + ("" if body else ", empty body")
        code = shaped(error.get("code"), _CODE_SHAPE, self.scrub)
        if code in _RETIRED_CODES or status == 404:
            return ModelRetired(message)
        if status in (401, 403):
            return UpstreamAuthFailed(f"The upstream provider rejected the server's credentials "
                                      f"(check {self._key_setting} on the server).")
        if status in _UNAVAILABLE_STATUSES or status >= 500:
            return UpstreamUnavailable(f"{self._label} is unavailable: {message}",
                                       retry_after=parse_retry_after(headers.get("retry-after")),
                                       kind=_unavailable_kind(status))
        return UpstreamRejected(message, status=status if status in (400, 413, 422) else 400,
                                param=shaped(error.get("param"), _PARAM_SHAPE, self.scrub), code=code)

    def stream_error(self, payload: Any) -> UpstreamUnavailable:
        """An error reported inside a stream (an `error` event or `x_groq.error`)."""
        error = payload.get("error") if isinstance(payload, dict) else payload
        if isinstance(error, dict):
            error = error.get("message")
        detail = self.scrub(error) if isinstance(error, str) and error.strip() else "no reason given"
        return UpstreamUnavailable(f"{self._label} stopped the stream early: {detail}", kind="server_error")


def _unavailable_kind(status: int) -> str:
    """The metric word for a "not now" status: rate_limited (429, 498), timeout (408) or server_error."""
    if status in (429, 498):
        return "rate_limited"
    return "timeout" if status == 408 else "server_error"
