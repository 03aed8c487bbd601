"""Stories of clock moves, rotations, restarts (and corrupt key files) for the key-rotation property.

`KeyStory` plays a story against a KeyRotationService and, after every step,
checks the one-key rule against its own bookkeeping of when each key was
retired: exactly one key is valid, and the one before it too only inside the
grace window after its retirement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import strategies as st

from app.domain.errors import InvalidApiKey
from app.domain.keys import KeyRotationService
from app.domain.models import ApiKey
from app.ports import KeyStore
from tests.unit.fakes_keys import FakeClock

ROTATION_DAYS = 1
LIFETIME = timedelta(days=ROTATION_DAYS)
CORRUPT_CONTENTS = ("", "[]", "{", "null", "garbage", '{"api_key": "sk-x"}')


@dataclass(frozen=True)
class Advance:
    """Move the clock forward."""

    seconds: float


@dataclass(frozen=True)
class Rotate:
    """An administrator's POST /rotate-key."""


@dataclass(frozen=True)
class Restart:
    """A new process: a new service over the same store."""


@dataclass(frozen=True)
class Corrupt:
    """Something overwrote the key file with `content`."""

    content: str


Step = Advance | Rotate | Restart | Corrupt


def stories(grace: float, *, corruption: bool = False) -> st.SearchStrategy[list[Step]]:
    """Lists of steps, clock moves landing on the interesting boundaries often."""
    lifetime = LIFETIME.total_seconds()
    edges = sorted({max(0.0, s) for s in (0, 1, grace - 1, grace, grace + 1, lifetime - 1, lifetime,
                                          lifetime + grace, 2 * lifetime)})
    moves = st.one_of(st.sampled_from(edges),
                      st.floats(min_value=0, max_value=3 * lifetime, allow_nan=False)).map(Advance)
    steps: list[st.SearchStrategy[Step]] = [moves, st.just(Rotate()), st.just(Restart())]
    if corruption:
        steps.append(st.sampled_from(CORRUPT_CONTENTS).map(Corrupt))
    return st.lists(st.one_of(*steps), max_size=25)


def accepts(service: KeyRotationService, key: str) -> bool:
    """Whether the service lets `key` in."""
    try:
        service.authenticate(key)
    except InvalidApiKey:
        return False
    return True


class KeyStory:
    """Plays steps on a service over `make_store()` and checks the one-key rule after each."""

    def __init__(self, make_store: Callable[[], KeyStore], clock: FakeClock, grace: float,
                 corrupt: Callable[[str], None] | None = None) -> None:
        self.make_store, self.clock, self.grace, self.corrupt = make_store, clock, grace, corrupt
        self.service = self._boot()
        self.current = self.service.current()
        self.previous: ApiKey | None = None
        self.retired_at: datetime | None = None
        self.seen = [self.current.value]
        self.check_valid_keys()

    def play(self, step: Step) -> None:
        """Apply one step, then check the rule."""
        now = self.clock.now()
        new_since: datetime | None = now
        retired_at = now
        if isinstance(step, Advance):
            self.clock.advance(seconds=step.seconds)
            if self.clock.now() >= self.current.expires_at:  # the next read rotates
                new_since, retired_at = self.clock.now(), self.current.expires_at
            else:
                new_since = None
        elif isinstance(step, Rotate):
            self.service.rotate_now()
        elif isinstance(step, Restart):
            self.service = self._boot()
            new_since = None
        else:
            assert self.corrupt is not None
            self.corrupt(step.content)
        self.check(new_since=new_since, retired_at=retired_at)

    def check(self, *, new_since: datetime | None, retired_at: datetime) -> None:
        """The key is new (minted at `new_since`) or unchanged, and the right keys are valid."""
        key = self.service.current()
        if new_since is None:
            assert key == self.current, "the key changed without expiry, rotation or corruption"
        else:
            assert key.value not in self.seen, "no new key, or an old key came back"
            assert (key.created_at, key.expires_at) == (new_since, new_since + LIFETIME)
            self.previous, self.retired_at = self.current, retired_at
            self.current = key
            self.seen.append(key.value)
        self.check_valid_keys()

    def check_valid_keys(self) -> None:
        """Exactly the current key is valid, and the previous one too inside its grace window."""
        now = self.clock.now()
        expected = {self.current.value}
        if self.previous is not None and self.retired_at is not None \
                and now < self.retired_at + timedelta(seconds=self.grace):
            expected.add(self.previous.value)
        assert {k for k in self.seen if accepts(self.service, k)} == expected

    def _boot(self) -> KeyRotationService:
        return KeyRotationService(store=self.make_store(), clock=self.clock, rotation_days=ROTATION_DAYS,
                                  grace_seconds=self.grace)
