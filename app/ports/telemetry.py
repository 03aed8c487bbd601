"""Telemetry port: the gateway events services and adapters report, and spans around model calls.

Implementations turn these into metrics and traces; the domain defaults to
`NO_TELEMETRY` (app/domain/observation.py), so services and tests need nothing.
No method takes prompt text or a secret.
"""

from __future__ import annotations

from typing import Protocol


class GenerationSpan(Protocol):
    """One call to a model (an upstream request or a local generation), open until `end()`.

    Also a context manager: leaving the block ends it.
    """

    def first_chunk(self) -> None:
        """A stream's first chunk is in hand (time to first chunk)."""
        ...

    def usage(self, *, model: str, input_tokens: int, output_tokens: int, finish_reason: str | None) -> None:
        """The model that answered and the tokens it used."""
        ...

    def fail(self, *, kind: str) -> None:
        """The call failed; `kind` is one of a few fixed words (timeout, rate_limited ...)."""
        ...

    def end(self) -> None:
        """Close the span and record the call's duration (idempotent)."""
        ...

    def __enter__(self) -> GenerationSpan:
        ...

    def __exit__(self, *exc: object) -> None:
        ...


class QueueView(Protocol):
    """The local tier's admission queue, read when metrics are collected."""

    @property
    def waiting(self) -> int:
        """Requests queued for a slot."""
        ...

    @property
    def running(self) -> int:
        """Generations holding a slot."""
        ...


class CircuitView(Protocol):
    """The upstream circuit breaker, read when metrics are collected."""

    @property
    def state(self) -> str:
        """`closed`, `half_open` or `open`."""
        ...


class Telemetry(Protocol):
    """Receives what the gateway does, for metrics and traces."""

    def http_request(self, *, method: str, route: str | None, status: int, seconds: float) -> None:
        """One HTTP request ended: its route template (None when no route matched), method, status, duration."""
        ...

    def generation(self, *, provider: str, model: str | None, operation: str, stream: bool) -> GenerationSpan:
        """Start a span around one model call (`operation`: `chat` or `text_completion`)."""
        ...

    def time_to_first_token(self, *, provider: str, model: str, seconds: float) -> None:
        """A streaming answer's first token left the gateway `seconds` after its request arrived."""
        ...

    def upstream_error(self, *, kind: str) -> None:
        """One upstream attempt failed (timeout, server_error, rate_limited, connection, model_retired, auth ...)."""
        ...

    def retry(self) -> None:
        """An upstream request is tried again."""
        ...

    def fallback(self, *, reason: str) -> None:
        """A request meant for the upstream is served by the local tier instead."""
        ...

    def local_tokens_per_second(self, *, model: str, rate: float) -> None:
        """Decode speed of one finished local generation."""
        ...

    def key_expiry(self, *, unix_time: float) -> None:
        """When the current client key expires (seconds since the epoch)."""
        ...

    def key_rotated(self) -> None:
        """A new client key replaced the old one."""
        ...

    def key_rejected(self) -> None:
        """A request presented a wrong or expired client key."""
        ...

    def lockout(self) -> None:
        """A request was refused (429) because its address is locked out."""
        ...

    def request_shed(self) -> None:
        """A request was refused (503) because the server was at its limit of concurrent work."""
        ...

    def watch_circuit(self, circuit: CircuitView) -> None:
        """Report `circuit`'s state whenever metrics are read."""
        ...

    def watch_local_queue(self, queue: QueueView) -> None:
        """Report `queue`'s depth and running generations whenever metrics are read."""
        ...
