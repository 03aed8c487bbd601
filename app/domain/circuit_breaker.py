"""Circuit breaker for the upstream provider: stop calling it while it keeps failing."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Literal

from app.ports import Clock

log = logging.getLogger(__name__)

CircuitState = Literal["closed", "open", "half_open"]
Admission = Literal["closed", "probe"]


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failures, for `cooldown_seconds`.

    While open, `admit()` refuses at once (callers serve the request elsewhere).
    After the cool-down one probe is let through (half-open): its success closes
    the circuit, its failure re-opens it for another cool-down.
    """

    def __init__(self, *, clock: Clock, failure_threshold: int = 3, cooldown_seconds: float = 30.0) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self._clock = clock
        self._threshold = failure_threshold
        self._cooldown = timedelta(seconds=cooldown_seconds)
        self._state: CircuitState = "closed"
        self._failures = 0
        self._opened_at: datetime | None = None
        self._probe_in_flight = False

    @property
    def state(self) -> CircuitState:
        """`closed` (calls pass), `open` (calls refused) or `half_open` (one probe allowed)."""
        if self._state == "open" and self._cooldown_over():
            return "half_open"
        return self._state

    def admit(self) -> Admission | None:
        """Whether a call may go upstream now: `closed`, `probe` (the half-open trial) or None."""
        state = self.state
        if state == "closed":
            return "closed"
        if state == "half_open" and not self._probe_in_flight:
            self._state = "half_open"
            self._probe_in_flight = True
            log.info("circuit half-open: probing the upstream with one request")
            return "probe"
        return None

    def retry_after(self) -> float:
        """Seconds until the circuit lets a probe through (0 when it would now)."""
        if self._state != "open" or self._opened_at is None:
            return 0.0
        remaining = self._opened_at + self._cooldown - self._clock.now()
        return max(0.0, remaining.total_seconds())

    def record_success(self) -> None:
        """The upstream answered: close the circuit and forget past failures."""
        if self._state != "closed":
            log.info("circuit closed: the upstream answered again")
        self._state = "closed"
        self._failures = 0
        self._opened_at = None
        self._probe_in_flight = False

    def record_failure(self) -> None:
        """The upstream failed: count it, and open once the threshold is reached."""
        self._failures += 1
        if self._state == "open":
            return  # a call admitted before the circuit opened; the cool-down runs on
        if self._state == "half_open" or self._failures >= self._threshold:
            log.warning("circuit open for %.0f s after %d consecutive upstream failures",
                        self._cooldown.total_seconds(), self._failures)
            self._state = "open"
            self._opened_at = self._clock.now()
            self._probe_in_flight = False

    def release(self) -> None:
        """The call ended without a verdict (cancelled): let the next request probe."""
        self._probe_in_flight = False

    def _cooldown_over(self) -> bool:
        return self._opened_at is not None and self._clock.now() >= self._opened_at + self._cooldown
