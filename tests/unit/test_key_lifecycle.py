"""KeyRotationService and AdminGuard: the seed's key rules, grace, checksum, with fakes."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import timedelta

import pytest

from app.domain.errors import AdminDisabled, InvalidAdminSecret, InvalidApiKey, KeyStoreUnavailable
from app.domain.keys import BASE62, AdminGuard, KeyRotationService, looks_like_key, random_key_value
from app.domain.models import ApiKey, KeyState, KeyStoreHealth
from app.ports import Clock, KeyStore
from tests.support.key_story import accepts
from tests.unit.fakes_keys import START, FakeClock, FakeKeyStore

WEEK = timedelta(days=7)


def make_service(store: KeyStore, clock: Clock, *, grace: float = 0) -> KeyRotationService:
    return KeyRotationService(store=store, clock=clock, rotation_days=7, grace_seconds=grace)


def stored_key(created=START, lifetime=WEEK) -> ApiKey:
    return ApiKey(value=random_key_value(), created_at=created, expires_at=created + lifetime)


# --- rotation on boot -------------------------------------------------------------------------

def test_boot_with_no_stored_key_mints_one_valid_for_the_rotation_period():
    store, clock = FakeKeyStore(), FakeClock()
    key = make_service(store, clock).current()
    assert store.load() is not None and store.load().current == key
    assert looks_like_key(key.value)
    assert key.created_at == START and key.expires_at == START + WEEK


def test_boot_with_an_expired_key_replaces_it_and_keeps_it_as_previous():
    old = stored_key(created=START - timedelta(days=8))
    store, clock = FakeKeyStore(KeyState(current=old)), FakeClock()
    key = make_service(store, clock).current()
    assert key.value != old.value
    assert store.load() == KeyState(current=key, previous=old)


def test_boot_with_a_corrupt_store_mints_a_new_key_without_crashing():
    store, clock = FakeKeyStore(KeyState(current=stored_key())), FakeClock()
    store.corrupt = True
    key = make_service(store, clock).current()
    assert store.load().current == key
    assert looks_like_key(key.value)


def test_boot_with_a_valid_key_keeps_it():
    valid = stored_key(created=START - timedelta(days=3))
    store = FakeKeyStore(KeyState(current=valid))
    assert make_service(store, FakeClock()).current() == valid
    assert store.load() == KeyState(current=valid)


# --- rotation exactly at expiry ---------------------------------------------------------------

def test_key_is_the_same_one_second_before_expiry_and_new_at_expiry():
    store, clock = FakeKeyStore(), FakeClock()
    service = make_service(store, clock)
    first = service.current()
    clock.set(first.expires_at - timedelta(seconds=1))
    assert service.current() == first
    assert accepts(service, first.value)
    clock.set(first.expires_at)
    second = service.current()
    assert second.value != first.value
    assert second.created_at == first.expires_at
    assert accepts(service, second.value)
    assert not accepts(service, first.value)


def test_an_expired_key_is_rejected_on_the_request_that_rotates():
    store, clock = FakeKeyStore(), FakeClock()
    service = make_service(store, clock)
    first = service.current()
    clock.set(first.expires_at + timedelta(days=30))  # idle for a month, no cron ran
    with pytest.raises(InvalidApiKey, match="expired"):
        service.authenticate(first.value)
    assert store.load().current.value != first.value


def test_exactly_one_key_is_valid_at_a_time():
    store, clock = FakeKeyStore(), FakeClock()
    service = make_service(store, clock)
    seen = [service.current().value]
    for _ in range(3):
        clock.advance(days=7)
        seen.append(service.current().value)
        seen.append(service.rotate_now().value)
    assert len(set(seen)) == len(seen)
    assert [k for k in seen if accepts(service, k)] == [seen[-1]]


def test_missing_and_malformed_keys_are_rejected():
    service = make_service(FakeKeyStore(), FakeClock())
    for bad in (None, "", "sk-short", "not-a-key" * 5):
        with pytest.raises(InvalidApiKey):
            service.authenticate(bad)


# --- checksum -----------------------------------------------------------------------------------

class StoreThatMustNotBeRead(FakeKeyStore):
    """Fails the test if the service reaches the store."""

    def load(self) -> KeyState | None:
        raise AssertionError("the store was consulted for a key with a bad checksum")


def test_every_one_character_typo_fails_the_checksum():
    key = random_key_value()
    typos = [key[:i] + c + key[i + 1:] for i in range(3, len(key)) for c in BASE62 if c != key[i]]
    assert len(typos) == (len(key) - 3) * 61
    assert looks_like_key(key)
    assert not any(looks_like_key(t) for t in typos)


def test_a_typo_is_rejected_before_the_store_is_read_or_keys_compared():
    key = random_key_value()
    typo = key[:10] + ("A" if key[10] != "A" else "B") + key[11:]
    service = make_service(StoreThatMustNotBeRead(), FakeClock())
    with pytest.raises(InvalidApiKey, match="^Invalid API key.$"):
        service.authenticate(typo)


# --- grace after rotation -----------------------------------------------------------------------

def test_with_no_grace_the_previous_key_dies_at_the_boundary():
    store, clock = FakeKeyStore(), FakeClock()
    service = make_service(store, clock, grace=0)
    first = service.current()
    clock.set(first.expires_at)
    assert not accepts(service, first.value)


def test_with_grace_the_previous_key_works_until_boundary_plus_grace():
    store, clock = FakeKeyStore(), FakeClock()
    service = make_service(store, clock, grace=60)
    first = service.current()
    clock.set(first.expires_at)
    second = service.current()
    assert accepts(service, first.value) and accepts(service, second.value)
    clock.set(first.expires_at + timedelta(seconds=59, microseconds=999_999))
    assert accepts(service, first.value)
    clock.set(first.expires_at + timedelta(seconds=60))
    assert not accepts(service, first.value)
    assert accepts(service, second.value)


def test_grace_after_an_early_rotation_counts_from_the_rotation_not_the_old_expiry():
    store, clock = FakeKeyStore(), FakeClock()
    service = make_service(store, clock, grace=60)
    first = service.current()
    clock.advance(days=2)
    rotated_at = clock.now()
    second = service.rotate_now()
    assert second.created_at == rotated_at and second.expires_at == rotated_at + WEEK
    clock.set(rotated_at + timedelta(seconds=59))
    assert accepts(service, first.value)
    clock.set(rotated_at + timedelta(seconds=60))
    assert not accepts(service, first.value)
    assert accepts(service, second.value)


def test_a_key_two_rotations_old_is_rejected_even_within_grace():
    store, clock = FakeKeyStore(), FakeClock()
    service = make_service(store, clock, grace=3600)
    first = service.current()
    service.rotate_now()
    service.rotate_now()
    assert not accepts(service, first.value)


def test_rotate_now_replaces_the_key_in_the_store():
    store, clock = FakeKeyStore(), FakeClock()
    service = make_service(store, clock)
    first = service.current()
    second = service.rotate_now()
    assert store.load() == KeyState(current=second, previous=first)
    assert not accepts(service, first.value) and accepts(service, second.value)


# --- admin secret -------------------------------------------------------------------------------

@pytest.mark.parametrize("unset", [None, ""])
def test_admin_endpoints_are_closed_when_no_secret_is_configured(unset):
    with pytest.raises(AdminDisabled):
        AdminGuard(secret=unset).check("anything")


@pytest.mark.parametrize("presented", [None, "", "wrong", "s3cret ", "S3CRET"])
def test_a_wrong_admin_secret_is_refused(presented):
    with pytest.raises(InvalidAdminSecret):
        AdminGuard(secret="s3cret").check(presented)


def test_the_right_admin_secret_passes():
    AdminGuard(secret="s3cret").check("s3cret")


def test_grace_counts_from_the_old_expiry_when_the_rotation_happens_late():
    store, clock = FakeKeyStore(), FakeClock()
    service = make_service(store, clock, grace=60)
    first = service.current()
    clock.set(first.expires_at + timedelta(days=30))  # first request after a long idle spell
    assert service.current().value != first.value
    assert not accepts(service, first.value)


# --- messages ------------------------------------------------------------------------------------

@pytest.mark.parametrize("days, words", [(7, "7 days"), (1, "1 day"), (0.5, "12 hours"), (1.5, "1.5 days"),
                                         (1 / 24, "1 hour"), (0.001, "1.44 minutes"), (1e-5, "0.86 seconds")])
def test_the_expired_key_message_names_a_fractional_rotation_period_truthfully(days, words):
    store, clock = FakeKeyStore(), FakeClock()
    service = KeyRotationService(store=store, clock=clock, rotation_days=days)
    first = service.current()
    clock.set(first.expires_at)
    with pytest.raises(InvalidApiKey) as info:
        service.authenticate(first.value)
    assert f"Keys rotate every {words};" in info.value.message
    assert "0 days" not in info.value.message


# --- the key in memory ---------------------------------------------------------------------------

class CountingStore(FakeKeyStore):
    """Counts full reads and records the thread each ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0
        self.threads: set[str] = set()

    def load(self) -> KeyState | None:
        self.loads += 1
        self.threads.add(threading.current_thread().name)
        return super().load()


def test_the_store_is_read_again_only_when_it_changed_or_the_key_expired():
    store, clock = CountingStore(), FakeClock()
    service = make_service(store, clock)
    key = service.current()
    assert accepts(service, key.value)  # after its own write, the service reads the store back once
    reads = store.loads
    for _ in range(50):
        assert accepts(service, key.value)
    assert store.loads == reads
    other = make_service(store, clock).rotate_now()  # another process rotates
    assert not accepts(service, key.value) and accepts(service, other.value)
    assert store.loads > reads
    reads = store.loads
    for _ in range(50):
        assert accepts(service, other.value)
    assert store.loads == reads
    clock.set(other.expires_at)
    assert not accepts(service, other.value)
    assert store.loads > reads


async def test_async_authentication_reads_the_store_off_the_event_loop():
    store, clock = CountingStore(), FakeClock()
    service = make_service(store, clock)
    key = await service.current_async()
    await service.authenticate_async(key.value)
    assert store.threads and threading.current_thread().name not in store.threads
    with pytest.raises(InvalidApiKey):
        await service.authenticate_async(random_key_value())


class GatedStore(FakeKeyStore):
    """A store whose reads wait until the test opens the gate (a slow disk, a held lock)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def load(self) -> KeyState | None:
        assert self.gate.wait(timeout=10), "the event loop was blocked by the key store"
        return super().load()


async def test_a_slow_key_store_does_not_block_the_event_loop():
    store = GatedStore()
    service = make_service(store, FakeClock())

    async def open_gate_from_the_loop() -> None:
        await asyncio.sleep(0.01)
        store.gate.set()

    key, _ = await asyncio.gather(service.current_async(), open_gate_from_the_loop())
    assert looks_like_key(key.value)


# --- an unusable store ---------------------------------------------------------------------------

class BrokenStore(FakeKeyStore):
    """A store that cannot be used until `broken` is cleared."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    def load(self) -> KeyState | None:
        if self.broken:
            raise KeyStoreUnavailable("the key file /srv/keys.json is a directory")
        return super().load()

    def health(self) -> KeyStoreHealth:
        if self.broken:
            return KeyStoreHealth(serving=False, readable=False, writable=False,
                                  message="the key file is a directory")
        return super().health()


def test_an_unusable_store_says_so_and_recovers_when_fixed(caplog):
    store, clock = BrokenStore(), FakeClock()
    service = make_service(store, clock)
    with caplog.at_level(logging.ERROR, logger="app.domain.keys"), \
            pytest.raises(KeyStoreUnavailable) as info:
        service.authenticate(random_key_value())
    assert "/srv/keys.json" not in info.value.message and "/srv/keys.json" in caplog.text
    health = service.health()
    assert not health.serving and health.message == "the key file is a directory"
    store.broken = False
    key = service.current()
    assert accepts(service, key.value)
    assert service.health() == KeyStoreHealth(serving=True, readable=True, writable=True, message="ok")
