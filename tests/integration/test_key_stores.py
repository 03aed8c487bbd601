"""The real key stores (JSON file on a temp dir, HMAC-derived) and the admin key endpoints."""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.adapters.hmac_derived_key_store import PERIOD_ANCHOR, HmacDerivedKeyStore
from app.adapters.json_file_key_store import JsonFileKeyStore
from app.adapters.system_clock import SystemClock
from app.containers import Container
from app.domain.errors import KeyStoreUnavailable, RotationNotSupported
from app.domain.keys import KeyRotationService, looks_like_key, random_key_value
from app.domain.models import ApiKey, KeyState
from app.main import create_app
from app.ports import Clock, KeyStore
from app.settings import Settings
from tests.support.key_story import accepts
from tests.unit.fakes import FakeLLMProvider
from tests.unit.fakes_keys import FakeClock

SECRET = "k" * 20 + "derived-key-secret-for-tests"
ADMIN = "admin-secret-for-tests"
WEEK = timedelta(days=7)


# --- JsonFileKeyStore ---------------------------------------------------------------------------

def test_file_store_writes_mode_0600_and_reads_back_what_it_wrote(tmp_path: Path):
    path = tmp_path / "sub" / "current_key.json"
    store = JsonFileKeyStore(path=path)
    assert store.load() is None
    key = KeyRotationService(store=store, clock=SystemClock(), rotation_days=7).current()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert JsonFileKeyStore(path=path).load() == KeyState(current=key)
    assert json.loads(path.read_text())["api_key"] == key.value
    assert not list(path.parent.glob(".*.tmp"))  # no temp file left behind


@pytest.mark.parametrize("content", [
    "", "{", "not json", "[]", "null", '{"api_key": "sk-x"}',
    '{"api_key": "sk-x", "created_at": "yesterday", "expires_at": "tomorrow"}',
    '{"api_key": "sk-x", "created_at": "2026-01-01T00:00:00", "expires_at": "2026-01-08T00:00:00"}',
])
def test_a_corrupt_key_file_gets_a_new_key_without_crashing(tmp_path: Path, content: str):
    path = tmp_path / "current_key.json"
    path.write_text(content)
    service = KeyRotationService(store=JsonFileKeyStore(path=path), clock=SystemClock(), rotation_days=7)
    key = service.current()
    assert looks_like_key(key.value)
    assert JsonFileKeyStore(path=path).load() == KeyState(current=key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_file_store_compare_and_swap_keeps_the_first_writer(tmp_path: Path):
    path = tmp_path / "k.json"
    now = datetime.now(UTC)
    a = ApiKey(value=random_key_value(), created_at=now, expires_at=now + WEEK)
    b = ApiKey(value=random_key_value(), created_at=now, expires_at=now + WEEK)
    assert JsonFileKeyStore(path=path).replace(expected=None, new=a) == KeyState(current=a)
    # a second writer that also saw "no key" loses and is told the winner
    assert JsonFileKeyStore(path=path).replace(expected=None, new=b) == KeyState(current=a)
    assert JsonFileKeyStore(path=path).load() == KeyState(current=a)


def test_threads_with_their_own_store_instances_agree_on_one_key(tmp_path: Path):
    path = tmp_path / "k.json"
    barrier = threading.Barrier(8)
    results: list[str] = []

    def boot() -> None:
        service = KeyRotationService(store=JsonFileKeyStore(path=path), clock=SystemClock(), rotation_days=7)
        barrier.wait(timeout=10)
        results.append(service.current().value)

    threads = [threading.Thread(target=boot) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert len(results) == 8 and len(set(results)) == 1
    state = JsonFileKeyStore(path=path).load()
    assert state.current.value == results[0] and state.previous is None  # minted exactly once


# --- HmacDerivedKeyStore ------------------------------------------------------------------------

def derived(clock: Clock, secret: str = SECRET, days: float = 7) -> HmacDerivedKeyStore:
    return HmacDerivedKeyStore(secret=secret, clock=clock, rotation_days=days)


def test_derived_key_has_the_key_format_and_is_stable_across_instances():
    clock: Clock = FakeClock()
    ports_satisfied: tuple[KeyStore, KeyStore] = (derived(clock), JsonFileKeyStore(path="unused.json"))
    assert len(ports_satisfied) == 2  # the annotation is the check: mypy proves both are KeyStores
    key = derived(clock).load().current
    assert looks_like_key(key.value) and len(key.value) == 3 + 32 + 6
    assert derived(clock).load().current == key  # a restart computes the same key
    assert derived(clock, secret=SECRET + "x").load().current.value != key.value


def test_derived_periods_are_fixed_windows_from_the_epoch():
    clock = FakeClock(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))  # a Thursday, like 1970-01-01
    key = derived(clock).load().current
    assert PERIOD_ANCHOR == datetime(1970, 1, 1, tzinfo=UTC)
    assert key.created_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert key.expires_at == datetime(2026, 1, 8, tzinfo=UTC)
    assert (key.created_at - PERIOD_ANCHOR) % WEEK == timedelta(0)


def test_derived_key_changes_exactly_at_the_period_boundary():
    clock = FakeClock()
    store = derived(clock)
    service = KeyRotationService(store=store, clock=clock, rotation_days=7, grace_seconds=0)
    first = service.current()
    clock.set(first.expires_at - timedelta(seconds=1))
    assert service.current() == first and accepts(service, first.value)
    clock.set(first.expires_at)
    second = service.current()
    assert second.value != first.value and second.created_at == first.expires_at
    assert accepts(service, second.value)
    assert not accepts(service, first.value)
    assert store.load() == KeyState(current=second, previous=first)


def test_derived_previous_key_is_honoured_for_the_grace_window_only():
    clock = FakeClock()
    service = KeyRotationService(store=derived(clock), clock=clock, rotation_days=7, grace_seconds=120)
    first = service.current()
    clock.set(first.expires_at + timedelta(seconds=119))
    assert accepts(service, first.value)
    clock.set(first.expires_at + timedelta(seconds=120))
    assert not accepts(service, first.value)


def test_derived_key_two_periods_old_is_rejected_even_with_grace():
    clock = FakeClock()
    service = KeyRotationService(store=derived(clock), clock=clock, rotation_days=7, grace_seconds=3600)
    first = service.current()
    clock.set(first.expires_at + WEEK)
    assert not accepts(service, first.value)


def test_derived_store_refuses_early_rotation():
    clock = FakeClock()
    service = KeyRotationService(store=derived(clock), clock=clock, rotation_days=7)
    before = service.current()
    with pytest.raises(RotationNotSupported, match="KEY_SECRET"):
        service.rotate_now()
    assert service.current() == before


def test_derived_store_answers_a_stale_compare_and_swap_with_the_current_period():
    clock = FakeClock()
    store = derived(clock)
    stale = store.load()
    clock.set(stale.current.expires_at)
    now_state = store.replace(expected=stale, new=stale.current)
    assert now_state == store.load() and now_state.current.created_at == stale.current.expires_at


def test_derived_store_refuses_an_empty_secret():
    with pytest.raises(ValueError):
        HmacDerivedKeyStore(secret="", clock=FakeClock(), rotation_days=7)


# --- settings and container ---------------------------------------------------------------------

@pytest.mark.parametrize("secret", [None, "", "short-secret"])
def test_derived_mode_without_a_strong_secret_fails_at_startup_without_echoing_it(secret):
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, key_store="derived", key_secret=secret, admin_secret="admin-value-xyz")
    text = str(info.value)
    assert "KEY_SECRET" in text
    assert "admin-value-xyz" not in text and (not secret or secret not in text)


def test_key_store_setting_picks_the_adapter(tmp_path: Path):
    file_app = create_app(Settings(_env_file=None, key_file=str(tmp_path / "k.json")))
    assert isinstance(file_app.state.container.key_store(), JsonFileKeyStore)
    derived_app = create_app(Settings(_env_file=None, key_store="derived", key_secret=SECRET))
    assert isinstance(derived_app.state.container.key_store(), HmacDerivedKeyStore)


# --- admin endpoints through the app ------------------------------------------------------------

def app_client(clock: FakeClock, **settings) -> TestClient:
    container = Container()
    container.override_providers(clock=clock, local=FakeLLMProvider(name="local", models=["local/fake"]))
    return TestClient(create_app(Settings(_env_file=None, admin_secret=ADMIN, **settings), container))


def chat_status(client: TestClient, key: str) -> int:
    """401 when the key is refused; 400 (empty body) once it is accepted."""
    return client.post("/chat", json={}, headers={"Authorization": f"Bearer {key}"}).status_code


def test_rotate_key_in_file_mode_replaces_the_key_now(tmp_path: Path):
    clock = FakeClock()
    client = app_client(clock, key_file=str(tmp_path / "k.json"))
    old = client.get("/current-key", headers={"admin-secret": ADMIN}).json()
    clock.advance(days=2)
    response = client.post("/rotate-key", headers={"admin-secret": ADMIN})
    assert response.status_code == 200
    new = response.json()
    assert set(new) == {"api_key", "expiry"} and new["api_key"] != old["api_key"]
    assert datetime.fromisoformat(new["expiry"]) == clock.now() + WEEK
    assert client.get("/current-key", headers={"admin-secret": ADMIN}).json() == new
    assert json.loads((tmp_path / "k.json").read_text())["api_key"] == new["api_key"]
    assert chat_status(client, old["api_key"]) == 401
    assert chat_status(client, new["api_key"]) == 400


def test_rotate_key_requires_the_admin_secret(tmp_path: Path):
    clock = FakeClock()
    client = app_client(clock, key_file=str(tmp_path / "k.json"))
    before = client.get("/current-key", headers={"admin-secret": ADMIN}).json()
    assert client.post("/rotate-key").status_code == 401
    assert client.post("/rotate-key", headers={"admin-secret": "wrong"}).status_code == 401
    assert client.get("/current-key", headers={"admin-secret": ADMIN}).json() == before
    closed = TestClient(create_app(Settings(_env_file=None, key_file=str(tmp_path / "k2.json"))))
    response = closed.post("/rotate-key", headers={"admin-secret": ADMIN})
    assert response.status_code == 403 and response.json()["error"]["code"] == "admin_disabled"


def test_rotate_key_in_derived_mode_is_409_and_says_how_to_replace_the_key():
    clock = FakeClock()
    client = app_client(clock, key_store="derived", key_secret=SECRET)
    current = client.get("/current-key", headers={"admin-secret": ADMIN}).json()
    assert datetime.fromisoformat(current["expiry"]) == datetime(2026, 1, 8, tzinfo=UTC)
    response = client.post("/rotate-key", headers={"admin-secret": ADMIN})
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "rotation_not_supported" and error["type"] == "invalid_request_error"
    assert "KEY_SECRET" in error["message"] and SECRET not in response.text
    assert client.get("/current-key", headers={"admin-secret": ADMIN}).json() == current
    assert chat_status(client, current["api_key"]) == 400


def test_key_grace_seconds_setting_reaches_the_service(tmp_path: Path):
    clock = FakeClock()
    client = app_client(clock, key_file=str(tmp_path / "k.json"), key_grace_seconds=30)
    old = client.get("/current-key", headers={"admin-secret": ADMIN}).json()["api_key"]
    new = client.post("/rotate-key", headers={"admin-secret": ADMIN}).json()["api_key"]
    assert chat_status(client, old) == 400 and chat_status(client, new) == 400
    clock.advance(seconds=29)
    assert chat_status(client, old) == 400
    clock.advance(seconds=1)
    assert chat_status(client, old) == 401 and chat_status(client, new) == 400


def test_derived_mode_through_the_app_rotates_at_the_boundary_with_grace_zero():
    clock = FakeClock()
    client = app_client(clock, key_store="derived", key_secret=SECRET)
    first = client.get("/current-key", headers={"admin-secret": ADMIN}).json()
    clock.set(datetime.fromisoformat(first["expiry"]) - timedelta(seconds=1))
    assert chat_status(client, first["api_key"]) == 400
    clock.set(datetime.fromisoformat(first["expiry"]))
    second = client.get("/current-key", headers={"admin-secret": ADMIN}).json()
    assert second["api_key"] != first["api_key"]
    assert chat_status(client, first["api_key"]) == 401 and chat_status(client, second["api_key"]) == 400


# --- key store health: corrupt, lost and unusable key files -------------------------------------

@pytest.mark.parametrize("content", ["", "[]", "garbage", '{"api_key": "sk-x"}'])
def test_a_corrupt_key_file_is_set_aside_and_reported_without_the_key(tmp_path: Path, content: str, caplog):
    path = tmp_path / "current_key.json"
    clock = FakeClock()
    first = KeyRotationService(store=JsonFileKeyStore(path=path), clock=clock, rotation_days=7).current()
    path.write_text(content)
    with caplog.at_level(logging.WARNING, logger="app.adapters.json_file_key_store"):
        key = KeyRotationService(store=JsonFileKeyStore(path=path), clock=clock, rotation_days=7).current()
    aside = list(tmp_path.glob("current_key.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == content
    assert re.fullmatch(r"current_key\.json\.corrupt-\d{8}T\d{6}\.\d{6}Z", aside[0].name)
    assert key.value != first.value and JsonFileKeyStore(path=path).load().current == key
    assert str(path) in caplog.text and "corrupt" in caplog.text
    assert first.value not in caplog.text and key.value not in caplog.text


def test_after_a_corrupt_key_file_the_lost_key_works_for_the_grace_window(tmp_path: Path):
    path = tmp_path / "k.json"
    clock = FakeClock()
    client = app_client(clock, key_file=str(path), key_grace_seconds=60)
    old = client.get("/current-key", headers={"admin-secret": ADMIN}).json()["api_key"]
    path.write_text("[]")
    new = client.get("/current-key", headers={"admin-secret": ADMIN}).json()["api_key"]
    assert new != old
    assert chat_status(client, old) == 400 and chat_status(client, new) == 400
    clock.advance(seconds=60)
    assert chat_status(client, old) == 401 and chat_status(client, new) == 400


def test_a_deleted_key_file_is_recovered_from_its_backup_for_the_grace_window(tmp_path: Path):
    path = tmp_path / "k.json"
    clock = FakeClock()
    service = KeyRotationService(store=JsonFileKeyStore(path=path), clock=clock, rotation_days=7,
                                 grace_seconds=30)
    old = service.current()
    path.unlink()
    new = service.current()
    assert new != old and accepts(service, old.value) and accepts(service, new.value)
    clock.advance(seconds=30)
    assert not accepts(service, old.value)


def test_file_store_version_changes_with_every_write_even_within_one_clock_tick(tmp_path: Path):
    path = tmp_path / "k.json"
    service = KeyRotationService(store=JsonFileKeyStore(path=path), clock=SystemClock(), rotation_days=7)
    service.current()
    store = JsonFileKeyStore(path=path)
    versions = [store.version()]
    for _ in range(30):
        service.rotate_now()
        versions.append(store.version())
    assert len(set(versions)) == len(versions)
    future = path.stat().st_mtime_ns + 3600 * 10**9  # a file stamped ahead of this clock
    os.utime(path, ns=(future, future))
    service.rotate_now()
    assert path.stat().st_mtime_ns > future  # a write never leaves the mtime where it was


class CountingJsonFileKeyStore(JsonFileKeyStore):
    """The real file store, counting its full reads."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.loads = 0

    def load(self) -> KeyState | None:
        self.loads += 1
        return super().load()


def test_the_key_file_is_read_only_after_it_changed(tmp_path: Path):
    path = tmp_path / "k.json"
    store = CountingJsonFileKeyStore(path=path)
    service = KeyRotationService(store=store, clock=SystemClock(), rotation_days=7)
    key = service.current()
    assert accepts(service, key.value)
    reads = store.loads
    for _ in range(100):
        assert accepts(service, key.value)
    assert store.loads == reads
    rotated = KeyRotationService(store=JsonFileKeyStore(path=path), clock=SystemClock(),
                                 rotation_days=7).rotate_now()
    assert not accepts(service, key.value) and accepts(service, rotated.value)
    assert store.loads == reads + 1


def test_a_directory_in_place_of_the_key_file_gives_503_and_readyz_503(tmp_path: Path, caplog):
    path = tmp_path / "k.json"
    path.mkdir()
    clock = FakeClock()
    with caplog.at_level(logging.INFO), app_client(clock, key_file=str(path)) as client:  # starts
        chat = client.post("/chat", json={"prompt": "hi"}, headers={"x-api-key": random_key_value()})
        models = client.get("/v1/models", headers={"Authorization": f"Bearer {random_key_value()}"})
        ready = client.get("/readyz")
        admin = client.get("/current-key", headers={"admin-secret": ADMIN})
        for response in (chat, models, admin):
            assert response.status_code == 503 and response.headers["retry-after"] == "30"
            assert response.json()["error"]["code"] == "key_store_unavailable"
            assert str(path) not in response.text
        assert ready.status_code == 503 and "directory" in ready.json()["error"]["message"]
        path.rmdir()  # fixed by the operator: served again, without a restart
        assert client.get("/readyz").status_code == 200
        key = client.get("/current-key", headers={"admin-secret": ADMIN}).json()["api_key"]
        assert chat_status(client, key) == 400
    assert f"the key file {path} is a directory" in caplog.text
    assert "Traceback" not in caplog.text


def test_a_key_file_under_a_regular_file_gives_503(tmp_path: Path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    service = KeyRotationService(store=JsonFileKeyStore(path=blocker / "k.json"), clock=FakeClock(),
                                 rotation_days=7)
    with pytest.raises(KeyStoreUnavailable) as info:
        service.current()
    assert str(blocker) in info.value.reason
    assert not service.health().serving


def test_admin_key_answers_are_not_cached_and_the_admin_secret_is_trimmed(tmp_path: Path):
    client = app_client(FakeClock(), key_file=str(tmp_path / "k.json"))
    read = client.get("/current-key", headers={"admin-secret": f"  {ADMIN}\t"})
    assert read.status_code == 200 and read.headers["cache-control"] == "no-store"
    rotated = client.post("/rotate-key", headers={"admin-secret": f" {ADMIN} "})
    assert rotated.status_code == 200 and rotated.headers["cache-control"] == "no-store"
    assert client.get("/current-key", headers={"admin-secret": f"x{ADMIN}"}).status_code == 401
