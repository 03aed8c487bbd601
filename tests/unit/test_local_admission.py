"""Bounded admission of local requests: run, wait in order, or be refused with Retry-After."""

from __future__ import annotations

import asyncio

import pytest

from app.adapters.local.admission import AdmissionQueue
from app.domain.errors import Overloaded
from app.entrypoints.http.errors import domain_error_response


async def _hold(queue: AdmissionQueue, release: asyncio.Event, log: list[str], name: str) -> None:
    async with queue.slot():
        log.append(name)
        await release.wait()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_requests_beyond_the_queue_are_refused_with_retry_after() -> None:
    queue = AdmissionQueue(slots=1, max_waiting=2)
    release, log = asyncio.Event(), []
    tasks = [asyncio.create_task(_hold(queue, release, log, str(i))) for i in range(3)]
    await _settle()
    assert (queue.running, queue.waiting) == (1, 2)

    with pytest.raises(Overloaded) as refused:
        async with queue.slot():
            pass

    assert refused.value.retry_after >= 1
    release.set()
    await asyncio.gather(*tasks)
    assert log == ["0", "1", "2"]
    assert (queue.running, queue.waiting) == (0, 0)


async def test_overloaded_maps_to_503_with_retry_after_in_the_openai_envelope() -> None:
    queue = AdmissionQueue(slots=1, max_waiting=0)
    release = asyncio.Event()
    holder = asyncio.create_task(_hold(queue, release, [], "a"))
    await _settle()
    with pytest.raises(Overloaded) as refused:
        async with queue.slot():
            pass
    release.set()
    await holder

    status, body, headers = domain_error_response(refused.value)

    assert status == 503
    assert int(headers["Retry-After"]) >= 1
    assert body["error"]["code"] == "overloaded" and body["error"]["type"] == "api_error"


async def test_a_cancelled_waiter_gives_its_place_up() -> None:
    queue = AdmissionQueue(slots=1, max_waiting=1)
    release, log = asyncio.Event(), []
    first = asyncio.create_task(_hold(queue, release, log, "first"))
    waiter = asyncio.create_task(_hold(queue, release, log, "cancelled"))
    await _settle()
    waiter.cancel()
    await _settle()
    third = asyncio.create_task(_hold(queue, release, log, "third"))
    await _settle()
    release.set()
    await asyncio.gather(first, third)

    assert log == ["first", "third"]
    assert (queue.running, queue.waiting) == (0, 0)


async def test_two_slots_run_two_requests_at_once() -> None:
    queue = AdmissionQueue(slots=2, max_waiting=0)
    release, log = asyncio.Event(), []
    tasks = [asyncio.create_task(_hold(queue, release, log, str(i))) for i in range(2)]
    await _settle()

    assert queue.running == 2 and sorted(log) == ["0", "1"]
    release.set()
    await asyncio.gather(*tasks)

