"""What one request did, and the no-op telemetry services default to.

`RequestFacts` is filled while a request is served (provider, model, tokens,
time spent waiting for a model, fallback reason) and read by the HTTP edge for
its access log line and the `x-gateway-overhead-ms` header. It travels in a
context variable, so services need no extra argument; outside a request
there are no facts and nothing is recorded.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar, Token
from dataclasses import dataclass

from app.domain import errors as e
from app.ports.telemetry import CircuitView, GenerationSpan, QueueView, Telemetry

__all__ = ["NO_TELEMETRY", "NoTelemetry", "RequestFacts", "bind_facts", "current_facts", "error_kind",
           "note_fallback", "release_facts"]


@dataclass(slots=True)
class RequestFacts:
    """What the gateway learned about one HTTP request while serving it."""

    request_id: str
    record_prompt: bool = False  # LOG_PROMPTS: only then is prompt text kept, for the log line
    provider: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    provider_calls: int = 0
    provider_seconds: float = 0.0  # waiting for the upstream or the local model
    fallback_reason: str | None = None
    prompt: str | None = None


_FACTS: ContextVar[RequestFacts | None] = ContextVar("gateway_request_facts", default=None)


def bind_facts(facts: RequestFacts) -> Token[RequestFacts | None]:
    """Make `facts` the current request's (until `release_facts`)."""
    return _FACTS.set(facts)


def release_facts(token: Token[RequestFacts | None]) -> None:
    """Undo `bind_facts`."""
    _FACTS.reset(token)


def current_facts() -> RequestFacts | None:
    """The facts of the request being served, None outside a request."""
    return _FACTS.get()


# Fixed words, so metric labels stay few whatever the upstream says.
_KINDS: list[tuple[type[Exception], str]] = [
    (e.UpstreamTimeout, "timeout"),
    (e.ModelRetired, "model_retired"),
    (e.UpstreamAuthFailed, "auth"),
    (e.UpstreamRejected, "rejected"),
    (e.UpstreamUnavailable, "unavailable"),
    (e.Overloaded, "overloaded"),
    (e.ContextTooLong, "context_too_long"),
    (e.InvalidRequest, "invalid_request"),
    (e.ProviderUnavailable, "provider_unavailable"),
    (e.DomainError, "other"),
]


def error_kind(exc: BaseException) -> str:
    """A short fixed word for what went wrong: the error's own `kind` when it has one, else by class."""
    kind = getattr(exc, "kind", None)
    if isinstance(kind, str) and kind:
        return kind
    for cls, word in _KINDS:
        if isinstance(exc, cls):
            return word
    return "cancelled" if isinstance(exc, asyncio.CancelledError) else "internal"


def note_fallback(telemetry: Telemetry, exc: BaseException) -> None:
    """A request goes to the local tier because the upstream failed with `exc`: count it and say why."""
    reason = error_kind(exc)
    telemetry.fallback(reason=reason)
    facts = current_facts()
    if facts is not None:
        facts.fallback_reason = reason


class _NoSpan:
    """A span that records nothing."""

    def first_chunk(self) -> None:
        """Nothing to record."""

    def usage(self, *, model: str, input_tokens: int, output_tokens: int, finish_reason: str | None) -> None:
        """Nothing to record."""

    def fail(self, *, kind: str) -> None:
        """Nothing to record."""

    def end(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_NO_SPAN = _NoSpan()


class NoTelemetry:
    """Telemetry that records nothing: the default of every service."""

    def http_request(self, *, method: str, route: str | None, status: int, seconds: float) -> None:
        """Nothing to record."""

    def generation(self, *, provider: str, model: str | None, operation: str, stream: bool) -> GenerationSpan:
        """The shared span that records nothing."""
        return _NO_SPAN

    def time_to_first_token(self, *, provider: str, model: str, seconds: float) -> None:
        """Nothing to record."""

    def upstream_error(self, *, kind: str) -> None:
        """Nothing to record."""

    def retry(self) -> None:
        """Nothing to record."""

    def fallback(self, *, reason: str) -> None:
        """Nothing to record."""

    def local_tokens_per_second(self, *, model: str, rate: float) -> None:
        """Nothing to record."""

    def key_expiry(self, *, unix_time: float) -> None:
        """Nothing to record."""

    def key_rotated(self) -> None:
        """Nothing to record."""

    def key_rejected(self) -> None:
        """Nothing to record."""

    def lockout(self) -> None:
        """Nothing to record."""

    def request_shed(self) -> None:
        """Nothing to record."""

    def watch_circuit(self, circuit: CircuitView) -> None:
        """Nothing to watch."""

    def watch_local_queue(self, queue: QueueView) -> None:
        """Nothing to watch."""


NO_TELEMETRY: Telemetry = NoTelemetry()
