"""Key store port."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol

from app.domain.models import ApiKey, KeyState, KeyStoreHealth


class KeyStore(Protocol):
    """Holds the current client key (and the one it replaced).

    Methods may block (file IO, a lock); callers on an event loop run them in a thread.
    A store that cannot be used at all raises KeyStoreUnavailable.
    """

    def version(self) -> Hashable:
        """A cheap token that changes whenever the stored state may have changed (no full read)."""
        ...

    def load(self) -> KeyState | None:
        """The stored state, or None when there is none (a corrupt store counts as none)."""
        ...

    def replace(self, *, expected: KeyState | None, new: ApiKey) -> KeyState:
        """Install `new` unless the stored state no longer equals `expected`.

        Compare-and-swap: when another process rotated first, its state is
        returned and `new` is discarded, so concurrent rotations end with one key.
        A store that cannot rotate on demand raises RotationNotSupported instead.
        When the stored state was lost (corrupt or deleted) but the key it held can
        be recovered, that key becomes `previous`, so the grace rule applies to it.
        """
        ...

    def health(self) -> KeyStoreHealth:
        """Whether the store can be read and written now (its own view; no key is minted)."""
        ...
