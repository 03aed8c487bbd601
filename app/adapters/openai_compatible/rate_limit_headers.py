"""Groq's rate-limit headers as domain RateLimits.

`x-ratelimit-remaining-requests` / `-tokens` are counts; `x-ratelimit-reset-*`
are Go durations (`2m59.56s`, `7.66s`, `120ms`); `retry-after` (on a 429) is
seconds. Anything unreadable is left out rather than guessed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from app.adapters.openai_compatible.errors import parse_retry_after
from app.domain.rate_limits import RateLimits

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|us|µs|ns|m|s)")
MAX_RESET_SECONDS = 86400.0  # a day: Groq's longest window (requests per day)
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(value: str | None) -> float | None:
    """Seconds of a Go duration (`1h2m3.5s`), or of plain seconds (`7.66`); None when unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            return None
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RESET_SECONDS)


def _count(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def rate_limits_from_headers(headers: Mapping[str, str], *, status: int) -> RateLimits | None:
    """What the headers say about the limits now; None when they say nothing."""
    limits = RateLimits(
        remaining_requests=_count(headers.get("x-ratelimit-remaining-requests")),
        remaining_tokens=_count(headers.get("x-ratelimit-remaining-tokens")),
        requests_reset_seconds=parse_duration(headers.get("x-ratelimit-reset-requests")),
        tokens_reset_seconds=parse_duration(headers.get("x-ratelimit-reset-tokens")),
        retry_after_seconds=parse_retry_after(headers.get("retry-after")) if status == 429 else None,
    )
    return None if limits == RateLimits() else limits
