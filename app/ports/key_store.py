"""Key store port."""

from __future__ import annotations

from typing import Protocol

from app.domain.models import ApiKey, KeyState


class KeyStore(Protocol):
    """Holds the current client key (and the one it replaced)."""

    def load(self) -> KeyState | None:
        """The stored state, or None when there is none or it cannot be read."""
        ...

    def replace(self, *, expected: KeyState | None, new: ApiKey) -> KeyState:
        """Install `new` unless the stored state no longer equals `expected`.

        Compare-and-swap: when another process rotated first, its state is
        returned and `new` is discarded, so concurrent rotations end with one key.
        A store that cannot rotate on demand raises RotationNotSupported instead.
        """
        ...
