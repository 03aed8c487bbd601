"""Key store adapter that stores nothing: each period's key is an HMAC of a server secret."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from app.domain.errors import RotationNotSupported
from app.domain.keys import BODY_LENGTH, format_key, to_base62
from app.domain.models import ApiKey, KeyState, KeyStoreHealth
from app.ports import Clock

# Periods are fixed windows of the rotation length counted from here, so every
# process and every restart computes the same boundaries with no shared state.
PERIOD_ANCHOR = datetime(1970, 1, 1, tzinfo=UTC)


class HmacDerivedKeyStore:
    """Derives the key of period n as `sk-` + base62(HMAC-SHA256(secret, "client-key:<n>")) + checksum.

    Period n runs from PERIOD_ANCHOR + n * rotation_days to the next boundary.
    The state it reports holds the current period's key and the previous
    period's (for the grace window). Nothing is written, so keys survive
    restarts, wiped disks and replicas; the price is that a key cannot be
    replaced early except by changing the secret.
    """

    def __init__(self, *, secret: str, clock: Clock, rotation_days: float,
                 anchor: datetime = PERIOD_ANCHOR) -> None:
        if not secret:
            raise ValueError("a derived key store needs a non-empty secret (KEY_SECRET)")
        if anchor.tzinfo is None:
            raise ValueError("the period anchor must carry a timezone")
        self._secret = secret.encode("utf-8")
        self._clock = clock
        self._lifetime = timedelta(days=rotation_days)
        self._anchor = anchor
        if self._lifetime <= timedelta(0):
            raise ValueError("rotation_days must be positive")

    def period(self, at: datetime) -> int:
        """The number of the period containing the instant `at`."""
        return (at - self._anchor) // self._lifetime

    def key_of_period(self, period: int) -> ApiKey:
        """The key of period `period`, valid over that period's window."""
        digest = hmac.new(self._secret, f"client-key:{period}".encode("ascii"), hashlib.sha256).digest()
        start = self._anchor + period * self._lifetime
        return ApiKey(value=format_key(to_base62(int.from_bytes(digest, "big"), width=BODY_LENGTH)),
                      created_at=start, expires_at=start + self._lifetime)

    def version(self) -> int:
        """The current period: the derived state changes with it and nothing else."""
        return self.period(self._clock.now())

    def health(self) -> KeyStoreHealth:
        """Always able: keys are computed, nothing is read or written."""
        return KeyStoreHealth(serving=True, readable=True, writable=True,
                              message="ok (keys are derived from KEY_SECRET)")

    def load(self) -> KeyState:
        """The current period's key, and the previous period's as `previous`."""
        period = self.period(self._clock.now())
        return KeyState(current=self.key_of_period(period), previous=self.key_of_period(period - 1))

    def replace(self, *, expected: KeyState | None, new: ApiKey) -> KeyState:
        """Refuse early rotation; a caller holding a past period's state gets the current one.

        Compare-and-swap as the port says: when the period changed since
        `expected` was read, the derived key already moved on and is returned.
        """
        state = self.load()
        if expected != state:
            return state
        raise RotationNotSupported(
            "This server derives its client key from KEY_SECRET, so the key cannot be rotated "
            "on demand. To replace it early, change KEY_SECRET and restart the server; otherwise "
            "it changes by itself at the end of the period.")
