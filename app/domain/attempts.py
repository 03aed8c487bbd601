"""Brute-force damping: too many wrong credentials from one client lock it out for a while."""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.domain.errors import TooManyAttempts
from app.domain.observation import NO_TELEMETRY
from app.ports import Clock
from app.ports.telemetry import Telemetry


@dataclass(frozen=True, slots=True)
class ClientAddressPolicy:
    """Which address brute-force damping counts a request by.

    Off (`trust_proxy_headers` false): the TCP peer. Behind proxies that each
    append to X-Forwarded-For, the client is the entry `trusted_hops` from the
    right; anything further left the client wrote itself.
    """

    trust_proxy_headers: bool = False
    trusted_hops: int = 1

    def __post_init__(self) -> None:
        if self.trusted_hops < 1:
            raise ValueError("trusted_hops must be at least 1")

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str:
        """The client's address from the TCP peer and the joined X-Forwarded-For headers."""
        if self.trust_proxy_headers and forwarded_for:
            hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
            if hops:
                return hops[-min(self.trusted_hops, len(hops))]
        return peer or "unknown"


@dataclass(slots=True)
class _Record:
    failures: deque[datetime] = field(default_factory=deque)
    locked_until: datetime | None = None


class FailedAttemptLimiter:
    """Counts wrong credentials per client address, in memory, with bounded memory.

    `max_failures` wrong credentials within `window_seconds` lock the address
    out for `window_seconds`: while locked, every credentialed request from it
    is refused before its credential is checked (a correct guess must not be
    distinguishable during the lockout). Successful requests neither count nor
    reset the count, so a client holding a valid key cannot interleave
    successes to keep guessing the admin secret. At most `max_clients`
    addresses are tracked; the least recently failing one is forgotten first.
    """

    def __init__(self, *, clock: Clock, max_failures: int, window_seconds: float,
                 max_clients: int = 10_000, telemetry: Telemetry = NO_TELEMETRY) -> None:
        if max_failures < 1 or window_seconds <= 0 or max_clients < 1:
            raise ValueError("max_failures, window_seconds and max_clients must be positive")
        self._clock = clock
        self._max_failures = max_failures
        self._window = timedelta(seconds=window_seconds)
        self._max_clients = max_clients
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()
        self._telemetry = telemetry

    def check(self, client: str) -> None:
        """Raise TooManyAttempts while `client` is locked out."""
        now = self._clock.now()
        with self._lock:
            record = self._records.get(client)
            if record is None or record.locked_until is None:
                return
            if now < record.locked_until:
                retry_after = (record.locked_until - now).total_seconds()
                self._telemetry.lockout()
                raise TooManyAttempts("Too many failed authentication attempts from this address; "
                                      f"retry in {max(1, round(retry_after))} seconds.",
                                      retry_after=retry_after)
            del self._records[client]  # lockout over: start from a clean slate

    def record_failure(self, client: str) -> None:
        """Count one wrong credential from `client`; lock it out at the limit."""
        now = self._clock.now()
        with self._lock:
            record = self._records.pop(client, None) or _Record()
            self._records[client] = record  # most recently failing last
            if record.locked_until is not None and now < record.locked_until:
                return
            record.locked_until = None
            cutoff = now - self._window
            while record.failures and record.failures[0] <= cutoff:
                record.failures.popleft()
            record.failures.append(now)
            if len(record.failures) >= self._max_failures:
                record.locked_until = now + self._window
                record.failures.clear()
            while len(self._records) > self._max_clients:
                self._records.popitem(last=False)

    def tracked_clients(self) -> int:
        """How many addresses are remembered now (for tests and metrics)."""
        with self._lock:
            return len(self._records)
