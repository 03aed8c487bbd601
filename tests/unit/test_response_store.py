"""The bounded, expiring store of Responses API responses."""

from __future__ import annotations

from app.domain.models import ChatMessage
from app.domain.response_store import ResponseStore, StoredResponse
from tests.unit.fakes import FakeClock


def stored(response_id: str) -> StoredResponse:
    return StoredResponse(id=response_id, body={"id": response_id, "object": "response"},
                          conversation=(ChatMessage(role="user", content=response_id),))


def test_a_stored_response_is_found_until_deleted() -> None:
    store = ResponseStore(clock=FakeClock(), max_stored=10, ttl_seconds=60)
    store.put(stored("resp_a"))

    found = store.find("resp_a")
    deleted = store.delete("resp_a")

    assert found is not None and found.conversation[0].content == "resp_a"
    assert deleted is True
    assert store.find("resp_a") is None
    assert store.delete("resp_a") is False


def test_the_oldest_go_first_beyond_the_bound() -> None:
    store = ResponseStore(clock=FakeClock(), max_stored=2, ttl_seconds=60)

    for response_id in ("resp_1", "resp_2", "resp_3"):
        store.put(stored(response_id))

    assert store.find("resp_1") is None
    assert store.find("resp_2") is not None and store.find("resp_3") is not None
    assert len(store) == 2


def test_responses_expire_after_the_ttl() -> None:
    clock = FakeClock()
    store = ResponseStore(clock=clock, max_stored=10, ttl_seconds=60)
    store.put(stored("resp_old"))
    clock.advance(seconds=30)
    store.put(stored("resp_new"))

    clock.advance(seconds=31)

    assert store.find("resp_old") is None
    assert store.find("resp_new") is not None
    clock.advance(seconds=30)
    assert len(store) == 0


def test_a_bound_of_zero_keeps_nothing() -> None:
    store = ResponseStore(clock=FakeClock(), max_stored=0, ttl_seconds=60)

    store.put(stored("resp_a"))

    assert store.find("resp_a") is None
