"""Stored responses of the Responses API: a bounded, expiring, in-process store.

It lives in the process: a restart forgets everything, and with several workers
each has its own (a follow-up that lands on another worker finds nothing).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.domain.models import ChatMessage
from app.ports.clock import Clock


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """One finished response: what the client was sent, and the conversation it ends.

    `conversation` holds every message up to and including this response's answer
    (instructions excluded: a follow-up brings its own), so a follow-up naming this
    response continues from it.
    """

    id: str
    body: Mapping[str, Any]
    conversation: tuple[ChatMessage, ...]


class ResponseStore:
    """Keeps at most `max_stored` responses, each for `ttl_seconds`; the oldest go first."""

    def __init__(self, *, clock: Clock, max_stored: int, ttl_seconds: float) -> None:
        self._clock = clock
        self._max = max_stored
        self._ttl = timedelta(seconds=ttl_seconds)
        self._entries: OrderedDict[str, tuple[datetime, StoredResponse]] = OrderedDict()

    def __len__(self) -> int:
        self._drop_expired()
        return len(self._entries)

    def put(self, response: StoredResponse) -> None:
        """Keep `response`, dropping the oldest ones beyond the bound."""
        self._drop_expired()
        if self._max <= 0:
            return
        self._entries.pop(response.id, None)
        self._entries[response.id] = (self._clock.now() + self._ttl, response)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def find(self, response_id: str) -> StoredResponse | None:
        """The stored response, or None when it is unknown, expired or deleted."""
        self._drop_expired()
        entry = self._entries.get(response_id)
        return entry[1] if entry else None

    def delete(self, response_id: str) -> bool:
        """Forget a response; False when there was none to forget."""
        self._drop_expired()
        return self._entries.pop(response_id, None) is not None

    def _drop_expired(self) -> None:
        # Entries are in insertion order with one TTL, so the expired ones are at the front.
        now = self._clock.now()
        while self._entries:
            response_id, (expires_at, _) = next(iter(self._entries.items()))
            if expires_at > now:
                break
            del self._entries[response_id]
