"""Hand-written fakes for the key lifecycle: a settable clock and a dict-backed key store."""

from __future__ import annotations

from collections.abc import Hashable
from datetime import UTC, datetime, timedelta

from app.domain.models import ApiKey, KeyState, KeyStoreHealth

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: datetime = START) -> None:
        self.current = now

    def now(self) -> datetime:
        """The instant the test set."""
        return self.current

    def advance(self, **delta: float) -> None:
        """Move forward by a timedelta's keyword arguments (seconds=..., days=...)."""
        self.current += timedelta(**delta)

    def set(self, now: datetime) -> None:
        """Jump to `now`."""
        self.current = now


class FakeKeyStore:
    """A KeyStore kept in a dict, with the port's compare-and-swap rule."""

    def __init__(self, state: KeyState | None = None) -> None:
        self.data: dict[str, KeyState] = {}
        if state is not None:
            self.data["state"] = state
        self.corrupt = False

    def version(self) -> Hashable:
        """The stored state itself: it changes exactly when the state does."""
        return (self.corrupt, self.data.get("state"))

    def health(self) -> KeyStoreHealth:
        """A dict is always readable and writable."""
        return KeyStoreHealth(serving=True, readable=True, writable=True, message="ok")

    def load(self) -> KeyState | None:
        """The stored state; None when empty or marked corrupt (as an unreadable file)."""
        return None if self.corrupt else self.data.get("state")

    def replace(self, *, expected: KeyState | None, new: ApiKey) -> KeyState:
        """Install `new` unless the stored state moved on since `expected`."""
        stored = self.load()
        if stored is not None and stored != expected:
            return stored
        self.corrupt = False
        state = KeyState(current=new, previous=stored.current if stored else None)
        self.data["state"] = state
        return state
