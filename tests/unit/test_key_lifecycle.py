"""KeyRotationService and AdminGuard: the seed's key rules, grace, checksum, with fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.domain.errors import AdminDisabled, InvalidAdminSecret, InvalidApiKey
from app.domain.keys import BASE62, AdminGuard, KeyRotationService, looks_like_key, random_key_value
from app.domain.models import ApiKey, KeyState
from app.ports import Clock, KeyStore
from tests.unit.fakes_keys import START, FakeClock, FakeKeyStore

WEEK = timedelta(days=7)


def make_service(store: KeyStore, clock: Clock, *, grace: float = 0) -> KeyRotationService:
    return KeyRotationService(store=store, clock=clock, rotation_days=7, grace_seconds=grace)


def stored_key(created=START, lifetime=WEEK) -> ApiKey:
    return ApiKey(value=random_key_value(), created_at=created, expires_at=created + lifetime)


def accepts(service: KeyRotationService, key: str) -> bool:
    try:
        service.authenticate(key)
    except InvalidApiKey:
        return False
    return True


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
