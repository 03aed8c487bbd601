"""Rate limits seen, not hit: while the upstream says a limit is used up, don't ask it until the reset."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.ports import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """What one upstream answer said about its limits (None: it did not say)."""

    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    requests_reset_seconds: float | None = None
    tokens_reset_seconds: float | None = None
    retry_after_seconds: float | None = None  # sent with a 429

    def exhausted_for(self) -> float | None:
        """Seconds until the upstream takes requests again, when a limit is used up; None when none is.

        A 429's `retry-after` is the upstream's own answer to that question; otherwise
        the reset of each used-up limit counts, the latest one.
        """
        if self.retry_after_seconds is not None:
            return self.retry_after_seconds
        waits = []
        if self.remaining_requests == 0 and self.requests_reset_seconds is not None:
            waits.append(self.requests_reset_seconds)
        if self.remaining_tokens == 0 and self.tokens_reset_seconds is not None:
            waits.append(self.tokens_reset_seconds)
        return max(waits) if waits else None


class RateLimitGate:
    """Remembers, per upstream model, until when its rate limit is used up (time from the Clock).

    The adapter reports every answer's limits through `observe`; the router asks
    `blocked_for` before sending a request, and skips a model that would only
    answer 429.
    """

    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock
        self._until: dict[str, datetime] = {}

    def observe(self, model: str, limits: RateLimits) -> None:
        """Take note of what an answer from `model` said about its limits."""
        wait = limits.exhausted_for()
        if wait is None or wait <= 0:
            return
        until = self._clock.now() + timedelta(seconds=wait)
        if self.blocked_for(model) is None:
            log.warning("the upstream's rate limit for %s is used up: requests skip it for %.1f s, "
                        "until it resets", model, wait)
        self._until[model] = max(until, self._until.get(model, until))

    def blocked_for(self, model: str) -> float | None:
        """Seconds until `model` may be asked again; None when it may be asked now."""
        until = self._until.get(model)
        if until is None:
            return None
        left = (until - self._clock.now()).total_seconds()
        if left <= 0:
            del self._until[model]
            return None
        return left
