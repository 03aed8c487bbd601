"""Client key format, rotation and the admin secret rule."""

from __future__ import annotations

import hmac
import logging
import secrets
import string
import zlib
from datetime import timedelta

from app.domain.errors import AdminDisabled, InvalidAdminSecret, InvalidApiKey
from app.domain.models import ApiKey, KeyState
from app.domain.observation import NO_TELEMETRY
from app.ports import Clock, KeyStore
from app.ports.telemetry import Telemetry

log = logging.getLogger(__name__)

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
KEY_PREFIX = "sk-"
BODY_LENGTH = 32
CHECKSUM_LENGTH = 6


def to_base62(number: int, *, width: int) -> str:
    """Fixed-width base62 text of a non-negative integer (most significant first)."""
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits))


def checksum(body: str) -> str:
    """CRC32 of the key body in base62, so typos fail before any comparison."""
    return to_base62(zlib.crc32(body.encode("ascii")), width=CHECKSUM_LENGTH)


def format_key(body: str) -> str:
    """`sk-` + body + checksum: the one key format, minted or derived."""
    return KEY_PREFIX + body + checksum(body)


def random_key_value() -> str:
    """A new key with 32 random base62 characters (about 190 bits) from `secrets`."""
    return format_key("".join(secrets.choice(BASE62) for _ in range(BODY_LENGTH)))


def looks_like_key(value: str) -> bool:
    """Cheap shape and checksum test; says nothing about whether the key is current."""
    body = value[len(KEY_PREFIX):-CHECKSUM_LENGTH]
    return (
        value.startswith(KEY_PREFIX)
        and len(value) >= len(KEY_PREFIX) + BODY_LENGTH + CHECKSUM_LENGTH
        and all(c in BASE62 for c in value[len(KEY_PREFIX):])
        and hmac.compare_digest(value[-CHECKSUM_LENGTH:], checksum(body))
    )


def same_secret(presented: str, expected: str) -> bool:
    """Constant-time equality of two secrets."""
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


class KeyRotationService:
    """Keeps exactly one valid client key, replaced every `rotation_days`, no cron.

    Rotation happens when the current key is read (boot, every request) and
    the clock has reached its expiry.
    """

    def __init__(self, *, store: KeyStore, clock: Clock, rotation_days: float,
                 grace_seconds: float = 0, telemetry: Telemetry = NO_TELEMETRY) -> None:
        self._store = store
        self._telemetry = telemetry
        self._clock = clock
        self._lifetime = timedelta(days=rotation_days)
        self._grace = timedelta(seconds=grace_seconds)

    def current(self) -> ApiKey:
        """The valid key now, rotating first when the stored one is missing or expired."""
        return self._state().current

    def rotate_now(self) -> ApiKey:
        """Replace the key at once (a leaked key); the store may refuse."""
        state = self._store.load()
        new = self._store.replace(expected=state, new=self._mint())
        log.info("client key rotated on request; new key expires %s", new.current.expires_at)
        self._telemetry.key_rotated()
        self._telemetry.key_expiry(unix_time=new.current.expires_at.timestamp())
        return new.current

    def authenticate(self, presented: str | None) -> None:
        """Raise InvalidApiKey unless `presented` is the current key (or in grace)."""
        if not presented:
            raise InvalidApiKey("Missing API key. Send it as 'Authorization: Bearer <key>' "
                                "or in the 'x-api-key' header.")
        if not looks_like_key(presented):
            self._telemetry.key_rejected()
            raise InvalidApiKey("Invalid API key.")
        state = self._state()
        if same_secret(presented, state.current.value):
            return
        previous = state.previous
        if previous is not None and self._in_grace(previous, state.current) \
                and same_secret(presented, previous.value):
            return
        self._telemetry.key_rejected()
        raise InvalidApiKey("Invalid or expired API key. Keys rotate every "
                            f"{self._lifetime.days} days; ask the administrator for the current one.")

    def _state(self) -> KeyState:
        state = self._store.load()
        if state is None or state.current.is_expired(self._clock.now()):
            state = self._store.replace(expected=state, new=self._mint())
            log.info("client key rotated; new key expires %s", state.current.expires_at)
            self._telemetry.key_rotated()
        self._telemetry.key_expiry(unix_time=state.current.expires_at.timestamp())
        return state

    def _mint(self) -> ApiKey:
        now = self._clock.now()
        return ApiKey(value=random_key_value(), created_at=now, expires_at=now + self._lifetime)

    def _in_grace(self, previous: ApiKey, current: ApiKey) -> bool:
        retired_at = min(previous.expires_at, current.created_at)
        return self._clock.now() < retired_at + self._grace


class AdminGuard:
    """The admin-secret rule: closed when unset, constant-time compare when set."""

    def __init__(self, *, secret: str | None) -> None:
        self._secret = secret or None

    def check(self, presented: str | None) -> None:
        """Raise unless admin endpoints are enabled and `presented` is the secret."""
        if self._secret is None:
            raise AdminDisabled("Admin endpoints are disabled: set the ADMIN_SECRET "
                                "environment variable on the server to enable them.")
        if not presented or not same_secret(presented, self._secret):
            raise InvalidAdminSecret("Invalid admin secret (header 'admin-secret').")

