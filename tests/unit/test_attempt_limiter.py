"""Brute-force damping: FailedAttemptLimiter with a fake clock, and through the HTTP guards."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.containers import Container
from app.domain.attempts import ClientAddressPolicy, FailedAttemptLimiter
from app.domain.errors import TooManyAttempts
from app.main import create_app
from app.settings import Settings
from tests.unit.fakes_keys import FakeClock, FakeKeyStore


def limiter(clock: FakeClock, **kw) -> FailedAttemptLimiter:
    return FailedAttemptLimiter(clock=clock, **{"max_failures": 3, "window_seconds": 60, **kw})


def locked(lim: FailedAttemptLimiter, client: str) -> bool:
    try:
        lim.check(client)
    except TooManyAttempts:
        return True
    return False


def test_the_limit_locks_the_address_out_for_the_window():
    clock = FakeClock()
    lim = limiter(clock)
    lim.record_failure("1.1.1.1")
    lim.record_failure("1.1.1.1")
    assert not locked(lim, "1.1.1.1")
    lim.record_failure("1.1.1.1")
    with pytest.raises(TooManyAttempts) as info:
        lim.check("1.1.1.1")
    assert info.value.retry_after == 60
    clock.advance(seconds=59)
    assert locked(lim, "1.1.1.1")
    clock.advance(seconds=1)
    assert not locked(lim, "1.1.1.1")


def test_after_the_lockout_the_count_starts_again():
    clock = FakeClock()
    lim = limiter(clock)
    for _ in range(3):
        lim.record_failure("a")
    clock.advance(seconds=60)
    assert not locked(lim, "a")
    lim.record_failure("a")
    assert not locked(lim, "a")


def test_other_addresses_are_unaffected():
    clock = FakeClock()
    lim = limiter(clock)
    for _ in range(5):
        lim.record_failure("attacker")
    assert locked(lim, "attacker")
    assert not locked(lim, "bystander")


def test_failures_older_than_the_window_do_not_count():
    clock = FakeClock()
    lim = limiter(clock)
    lim.record_failure("a")
    lim.record_failure("a")
    clock.advance(seconds=60)
    lim.record_failure("a")
    assert not locked(lim, "a")
    lim.record_failure("a")
    lim.record_failure("a")
    assert locked(lim, "a")


def test_attempts_during_the_lockout_do_not_extend_it():
    clock = FakeClock()
    lim = limiter(clock)
    for _ in range(3):
        lim.record_failure("a")
    clock.advance(seconds=30)
    lim.record_failure("a")
    clock.advance(seconds=30)
    assert not locked(lim, "a")


def test_memory_is_bounded_by_forgetting_the_least_recent_address():
    clock = FakeClock()
    lim = limiter(clock, max_clients=3)
    for i in range(100):
        lim.record_failure(f"10.0.0.{i}")
    assert lim.tracked_clients() == 3
    for _ in range(3):
        lim.record_failure("10.0.0.99")
    assert locked(lim, "10.0.0.99")


@pytest.mark.parametrize("peer, xff, trust, hops, expected", [
    ("9.9.9.9", "1.1.1.1", False, 1, "9.9.9.9"),            # header ignored unless trusted
    ("9.9.9.9", None, True, 1, "9.9.9.9"),
    ("9.9.9.9", "1.1.1.1", True, 1, "1.1.1.1"),
    ("9.9.9.9", "6.6.6.6, 1.1.1.1", True, 1, "1.1.1.1"),   # a forged left entry is skipped
    ("9.9.9.9", "6.6.6.6, 1.1.1.1, 104.0.0.1", True, 2, "1.1.1.1"),  # client, CDN edge (Render)
    ("9.9.9.9", "1.1.1.1", True, 2, "1.1.1.1"),              # fewer entries than hops: leftmost
    (None, None, False, 1, "unknown"),
])
def test_client_address(peer, xff, trust, hops, expected):
    policy = ClientAddressPolicy(trust_proxy_headers=trust, trusted_hops=hops)
    assert policy.client_address(peer, xff) == expected


# --- through the HTTP guards, fakes in through the real container ------------------------------

ADMIN = "admin-secret-for-tests"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def client(clock):
    container = Container()
    container.override_providers(clock=clock, key_store=FakeKeyStore())
    app = create_app(Settings(_env_file=None, admin_secret=ADMIN, trust_proxy_headers=True,
                              auth_max_failures=3, auth_failure_window_seconds=60), container)
    return TestClient(app)


def from_ip(ip: str, **headers: str) -> dict[str, str]:
    return {"x-forwarded-for": ip, **headers}


def current_key(client: TestClient, ip: str = "10.9.9.9") -> str:
    response = client.get("/current-key", headers=from_ip(ip, **{"admin-secret": ADMIN}))
    assert response.status_code == 200
    return response.json()["api_key"]


def test_wrong_admin_secrets_get_429_then_recover(client, clock):
    for _ in range(3):
        assert client.get("/current-key", headers=from_ip("6.6.6.6", **{"admin-secret": "guess"})
                          ).status_code == 401
    locked_out = client.get("/current-key", headers=from_ip("6.6.6.6", **{"admin-secret": ADMIN}))
    assert locked_out.status_code == 429  # even the right secret: a hit must not show during lockout
    assert locked_out.headers["retry-after"] == "60"
    assert locked_out.json()["error"]["code"] == "too_many_attempts"
    assert locked_out.json()["error"]["type"] == "rate_limit_error"
    assert current_key(client, "1.2.3.4")  # another address is unaffected
    clock.advance(seconds=60)
    assert current_key(client, "6.6.6.6")


def test_wrong_api_keys_get_429_and_a_correct_client_elsewhere_is_unaffected(client, clock):
    key = current_key(client)
    for guess in ("not-a-key", "sk-" + "A" * 38, key[:-1] + ("A" if key[-1] != "A" else "B")):
        assert client.post("/chat", json={}, headers=from_ip("6.6.6.6", **{"x-api-key": guess})
                           ).status_code == 401
    assert client.post("/chat", json={}, headers=from_ip("6.6.6.6", **{"x-api-key": key})).status_code == 429
    # authenticated, so the request reaches body validation: 400, not 401 or 429
    assert client.post("/chat", json={}, headers=from_ip("1.2.3.4", **{"x-api-key": key})).status_code == 400
    clock.advance(seconds=60)
    assert client.post("/chat", json={}, headers=from_ip("6.6.6.6", **{"x-api-key": key})).status_code == 400


def test_successes_do_not_count_and_do_not_reset_the_count(client):
    key = current_key(client)
    headers_ok = from_ip("6.6.6.6", **{"x-api-key": key})
    for _ in range(20):
        assert client.post("/chat", json={}, headers=headers_ok).status_code == 400
    for _ in range(2):
        assert client.get("/current-key", headers=from_ip("6.6.6.6", **{"admin-secret": "guess"})
                          ).status_code == 401
        assert client.post("/chat", json={}, headers=headers_ok).status_code == 400
    assert client.get("/current-key", headers=from_ip("6.6.6.6", **{"admin-secret": "guess"})
                      ).status_code == 401
    assert client.post("/chat", json={}, headers=headers_ok).status_code == 429


def test_requests_without_credentials_are_401_and_not_counted(client):
    for _ in range(10):
        assert client.post("/chat", json={}, headers=from_ip("6.6.6.6")).status_code == 401
        assert client.get("/current-key", headers=from_ip("6.6.6.6")).status_code == 401
    assert current_key(client, "6.6.6.6")


def test_without_trusted_proxy_headers_the_peer_address_counts(clock):
    container = Container()
    container.override_providers(clock=clock, key_store=FakeKeyStore())
    client = TestClient(create_app(Settings(_env_file=None, admin_secret=ADMIN, auth_max_failures=2),
                                   container))
    for ip in ("1.1.1.1", "2.2.2.2"):  # forged headers change nothing: same peer
        assert client.get("/current-key", headers=from_ip(ip, **{"admin-secret": "x"})).status_code == 401
    response = client.get("/current-key", headers=from_ip("3.3.3.3", **{"admin-secret": ADMIN}))
    assert response.status_code == 429
    clock.advance(seconds=60)
    assert client.get("/current-key", headers={"admin-secret": ADMIN}).status_code == 200
