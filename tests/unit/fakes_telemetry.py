"""A Telemetry fake that keeps what it was told as counts, spans and values."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from app.ports.telemetry import CircuitView, QueueView


@dataclass
class FakeSpan:
    """A span kept in memory: what it was told, and whether it was ended."""

    provider: str
    model: str | None
    operation: str
    stream: bool
    first_chunks: int = 0
    used: tuple[str, int, int, str | None] | None = None
    error: str | None = None
    ended: bool = False  # end() is idempotent, as the port says

    def first_chunk(self) -> None:
        self.first_chunks += 1

    def usage(self, *, model: str, input_tokens: int, output_tokens: int, finish_reason: str | None) -> None:
        self.used = (model, input_tokens, output_tokens, finish_reason)

    def fail(self, *, kind: str) -> None:
        self.error = kind

    def end(self) -> None:
        self.ended = True

    def __enter__(self) -> FakeSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()


@dataclass
class FakeTelemetry:
    """Counts events by name and kind, keeps spans and the last gauge values."""

    events: Counter[str] = field(default_factory=Counter)
    spans: list[FakeSpan] = field(default_factory=list)
    gauges: dict[str, float] = field(default_factory=dict)
    circuits: list[CircuitView] = field(default_factory=list)
    queues: list[QueueView] = field(default_factory=list)

    def http_request(self, *, method: str, route: str | None, status: int, seconds: float) -> None:
        self.events[f"http:{method} {route} {status}"] += 1

    def generation(self, *, provider: str, model: str | None, operation: str, stream: bool) -> FakeSpan:
        span = FakeSpan(provider, model, operation, stream)
        self.spans.append(span)
        return span

    def time_to_first_token(self, *, provider: str, model: str, seconds: float) -> None:
        self.events[f"ttft:{provider}"] += 1

    def upstream_error(self, *, kind: str) -> None:
        self.events[f"upstream_error:{kind}"] += 1

    def retry(self) -> None:
        self.events["retry"] += 1

    def fallback(self, *, reason: str) -> None:
        self.events[f"fallback:{reason}"] += 1

    def local_tokens_per_second(self, *, model: str, rate: float) -> None:
        self.gauges["local_tokens_per_second"] = rate

    def key_expiry(self, *, unix_time: float) -> None:
        self.gauges["key_expiry"] = unix_time

    def key_rotated(self) -> None:
        self.events["key_rotated"] += 1

    def key_rejected(self) -> None:
        self.events["key_rejected"] += 1

    def lockout(self) -> None:
        self.events["lockout"] += 1

    def request_shed(self) -> None:
        self.events["request_shed"] += 1

    def watch_circuit(self, circuit: CircuitView) -> None:
        self.circuits.append(circuit)

    def watch_local_queue(self, queue: QueueView) -> None:
        self.queues.append(queue)
