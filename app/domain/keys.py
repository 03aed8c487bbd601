"""Client key format, rotation and the admin secret rule."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import string
import threading
import zlib
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from app.domain.errors import AdminDisabled, InvalidAdminSecret, InvalidApiKey, KeyStoreUnavailable
from app.domain.models import ApiKey, KeyState, KeyStoreHealth
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
        and value.isascii() and value[len(KEY_PREFIX):].isalnum()  # ASCII letters and digits: BASE62
        and hmac.compare_digest(value[-CHECKSUM_LENGTH:], checksum(body))
    )


def same_secret(presented: str, expected: str) -> bool:
    """Constant-time equality of two secrets."""
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def describe_period(period: timedelta) -> str:
    """A lifetime in words for messages: `7 days`, `12 hours`, `1.5 minutes`, never `0 days`."""
    seconds = period.total_seconds()
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            count = round(seconds / size, 2)
            return f"{count:g} {unit}{'' if count == 1 else 's'}"
    return f"{round(seconds, 2):g} second{'' if seconds == 1 else 's'}"


_UNSEEN = object()  # a store version no store returns: the cached state is re-read once


class KeyRotationService:
    """Keeps exactly one valid client key, replaced every `rotation_days`, no cron.

    Rotation happens when the current key is read (boot, every request) and
    the clock has reached its expiry. The state is kept in memory and read
    from the store again only when the store's `version()` changed (another
    process rotated) or the key expired, so a request usually costs one
    `version()` call. The `*_async` methods are for the event loop: store
    reads, rotations and their file lock run on the service's own worker thread.
    """

    def __init__(self, *, store: KeyStore, clock: Clock, rotation_days: float,
                 grace_seconds: float = 0, telemetry: Telemetry = NO_TELEMETRY) -> None:
        self._store = store
        self._telemetry = telemetry
        self._clock = clock
        self._lifetime = timedelta(days=rotation_days)
        self._grace = timedelta(seconds=grace_seconds)
        self._cached: tuple[Hashable, KeyState] | None = None
        self._lock = threading.Lock()  # one reader or rotator at a time in this process
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="client-keys")
        self._problem: str | None = None

    def current(self) -> ApiKey:
        """The valid key now, rotating first when the stored one is missing or expired (blocking)."""
        return self._state().current

    def rotate_now(self) -> ApiKey:
        """Replace the key at once (a leaked key); the store may refuse (blocking)."""
        with self._lock:
            new = self._guarded(lambda: self._store.replace(expected=self._store.load(), new=self._mint()))
            self._cached = (_UNSEEN, new)
        log.info("client key rotated on request; new key expires %s", new.current.expires_at)
        self._telemetry.key_rotated()
        self._telemetry.key_expiry(unix_time=new.current.expires_at.timestamp())
        return new.current

    def authenticate(self, presented: str | None) -> None:
        """Raise InvalidApiKey unless `presented` is the current key, or the previous one in grace (blocking)."""
        self._check_shape(presented)
        self._match(presented, self._state())

    def health(self) -> KeyStoreHealth:
        """Whether keys can be served now: the store's own view, and a key actually in hand (blocking)."""
        store = self._store.health()
        try:
            self._state()
        except KeyStoreUnavailable:
            message = store.message if not store.readable or not store.writable else \
                "the key store failed (the server's log says why)"
            return KeyStoreHealth(serving=False, readable=store.readable, writable=store.writable,
                                  message=message)
        return KeyStoreHealth(serving=True, readable=store.readable, writable=store.writable,
                              message=store.message)

    async def current_async(self) -> ApiKey:
        """`current()` for the event loop."""
        return (await self._state_async()).current

    async def rotate_now_async(self) -> ApiKey:
        """`rotate_now()` for the event loop."""
        return await asyncio.wrap_future(self._worker.submit(self.rotate_now))

    async def authenticate_async(self, presented: str | None) -> None:
        """`authenticate()` for the event loop: the store is read off the loop, and only when it changed.

        The current key in memory is compared first: the shape check (checksum included) is
        for keys that are not it, which is what it is for (issue 14: ~1% of a request).
        """
        state = self._fresh()
        if state is not None and presented and same_secret(presented, state.current.value):
            return
        self._check_shape(presented)
        self._match(presented, await self._state_async())

    async def health_async(self) -> KeyStoreHealth:
        """`health()` for the event loop."""
        return await asyncio.wrap_future(self._worker.submit(self.health))

    def _check_shape(self, presented: str | None) -> None:
        if not presented:
            raise InvalidApiKey("Missing API key. Send it as 'Authorization: Bearer <key>' "
                                "or in the 'x-api-key' header.")
        if not looks_like_key(presented):
            self._telemetry.key_rejected()
            raise InvalidApiKey("Invalid API key.")

    def _match(self, presented: str, state: KeyState) -> None:
        if same_secret(presented, state.current.value):
            return
        previous = state.previous
        if previous is not None and self._in_grace(previous, state.current) \
                and same_secret(presented, previous.value):
            return
        self._telemetry.key_rejected()
        raise InvalidApiKey("Invalid or expired API key. Keys rotate every "
                            f"{describe_period(self._lifetime)}; ask the administrator for the current one.")

    def _fresh(self) -> KeyState | None:
        """The state in memory while the store has not changed and the key has not expired."""
        cached = self._cached
        if cached is None or cached[1].current.is_expired(self._clock.now()):
            return None
        version, state = cached
        return state if self._store.version() == version else None

    async def _state_async(self) -> KeyState:
        state = self._fresh()
        if state is None:
            state = await asyncio.wrap_future(self._worker.submit(self._state))
        return state

    def _state(self) -> KeyState:
        state = self._fresh()
        if state is not None:
            return state
        with self._lock:
            state = self._fresh()  # another thread may have read it while this one waited
            if state is None:
                state = self._guarded(self._read_or_rotate)
        return state

    def _read_or_rotate(self) -> KeyState:
        version = self._store.version()  # before the read: a change during it shows next time
        state = self._store.load()
        if state is None or state.current.is_expired(self._clock.now()):
            state = self._store.replace(expected=state, new=self._mint())
            version = _UNSEEN  # our own write, or a rival's: its version is read with it next time
            log.info("client key rotated; new key expires %s", state.current.expires_at)
            self._telemetry.key_rotated()
        self._telemetry.key_expiry(unix_time=state.current.expires_at.timestamp())
        self._cached = (version, state)
        return state

    def _guarded(self, action: Callable[[], KeyState]) -> KeyState:
        """Run a store action, logging a store that became unusable (or usable again) once."""
        try:
            state = action()
        except KeyStoreUnavailable as exc:
            if exc.reason != self._problem:
                log.error("client keys cannot be served: %s; authenticated requests answer 503 "
                          "and /readyz 503 until this is fixed", exc.reason)
                self._problem = exc.reason
            raise
        if self._problem is not None:
            log.warning("the client key store works again")
            self._problem = None
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

