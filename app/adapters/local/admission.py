"""Bounded admission for the local model: a few run, a few wait, the rest get Overloaded."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.domain.errors import Overloaded


class AdmissionQueue:
    """At most `slots` requests run at once; up to `max_waiting` wait in FIFO order.

    A request beyond that raises `Overloaded` with a Retry-After estimated from
    how long recent requests held a slot. Not bound to one event loop: each
    waiter's future belongs to the loop that awaits it.
    """

    def __init__(self, *, slots: int = 1, max_waiting: int = 8, default_seconds: float = 10.0) -> None:
        if slots < 1 or max_waiting < 0:
            raise ValueError("slots must be >= 1 and max_waiting >= 0")
        self._slots = slots
        self._free = slots
        self._max_waiting = max_waiting
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._mean_seconds = default_seconds  # moving average of one request's hold time

    @property
    def running(self) -> int:
        """Requests holding a slot now."""
        return self._slots - self._free

    @property
    def waiting(self) -> int:
        """Requests queued for a slot now."""
        return sum(1 for f in self._waiters if not f.done())

    def retry_after(self) -> float:
        """Seconds until the queue has likely moved by one place."""
        ahead = self.waiting + self.running
        return min(120.0, max(1.0, self._mean_seconds * ahead / self._slots))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot for the duration of the block, waiting for one if needed."""
        if self._free > 0 and not self.waiting:
            self._free -= 1
        else:
            if self.waiting >= self._max_waiting:
                raise Overloaded(f"The local model is busy: {self.running} running and "
                                 f"{self.waiting} waiting. Retry later.", retry_after=self.retry_after())
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(future)
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._release()  # the slot was handed over just as we gave up
                else:
                    self._waiters.remove(future)
                raise
        started = time.monotonic()
        try:
            yield
        finally:
            self._mean_seconds = 0.7 * self._mean_seconds + 0.3 * (time.monotonic() - started)
            self._release()

    def _release(self) -> None:
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)  # hand our slot straight to the next waiter
                return
        self._free += 1

