"""Telemetry on the OpenTelemetry SDK: metrics read by Prometheus, spans exported with OTLP when configured.

Each instance owns its meter and tracer providers and its Prometheus registry
(no global state), so several apps in one process keep their numbers apart.
Tracing is off unless a span exporter is given: then no span object is ever
made on the hot path (`bench/telemetry_overhead.py` measures it).
"""

from __future__ import annotations

import os
from time import perf_counter

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder

from app.adapters.telemetry.instruments import CIRCUIT_STATES, Instruments
from app.ports.telemetry import CircuitView, QueueView

SERVICE_NAME = "ai-api-server"
_SCOPE = "app.gateway"


class OtelTelemetry:
    """The Telemetry port on OpenTelemetry; `/metrics` reads `metrics_text()`.

    `span_exporter`: where finished spans go (None: tracing off). `batch=False`
    exports each span as it ends (tests); the default batches off the hot path.
    """

    def __init__(self, *, span_exporter: SpanExporter | None = None, batch: bool = True,
                 service_name: str = SERVICE_NAME) -> None:
        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
        resource = Resource.create(attributes)
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes and friends
        reader = PrometheusMetricReader(registry=self.registry, scope_info_enabled=False)
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        self.tracer_provider: TracerProvider | None = None
        self._tracer: Tracer | None = None
        if span_exporter is not None:
            self.tracer_provider = TracerProvider(resource=resource)
            processor = BatchSpanProcessor(span_exporter) if batch else SimpleSpanProcessor(span_exporter)
            self.tracer_provider.add_span_processor(processor)
            self._tracer = self.tracer_provider.get_tracer(_SCOPE)
        self._circuits: list[CircuitView] = []
        self._queues: list[QueueView] = []
        self.instruments = Instruments(
            self.meter_provider.get_meter(_SCOPE),
            circuit=lambda: [(CIRCUIT_STATES.get(c.state, 2), {}) for c in self._circuits],
            queue_depth=lambda: [(q.waiting, {}) for q in self._queues],
            in_flight=lambda: [(q.running, {}) for q in self._queues])

    @property
    def tracing(self) -> bool:
        """Whether spans are recorded."""
        return self._tracer is not None

    def metrics_text(self, accept: str | None = None) -> tuple[bytes, str]:
        """Every metric in the format the scraper's `Accept` asks for (Prometheus text by default), and its type."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type

    def generation(self, *, provider: str, model: str | None, operation: str, stream: bool) -> Generation:
        """Start a span (when tracing) and a duration measurement around one model call."""
        return Generation(self, provider=provider, model=model, operation=operation, stream=stream)

    def time_to_first_token(self, *, provider: str, model: str, seconds: float) -> None:
        """Record a streaming answer's time to first token at the gateway."""
        self.instruments.time_to_first_token.record(
            seconds, {"gen_ai.provider.name": provider, "gen_ai.response.model": model})

    def upstream_error(self, *, kind: str) -> None:
        """Count a failed upstream attempt by kind."""
        self.instruments.upstream_errors.add(1, {"error.type": kind})

    def retry(self) -> None:
        """Count an upstream retry."""
        self.instruments.retries.add(1)

    def fallback(self, *, reason: str) -> None:
        """Count a fallback to the local tier by reason."""
        self.instruments.fallbacks.add(1, {"reason": reason})

    def local_tokens_per_second(self, *, model: str, rate: float) -> None:
        """Set the last local decode speed."""
        self.instruments.local_tokens_per_second.set(rate, {"gen_ai.response.model": model})

    def key_expiry(self, *, unix_time: float) -> None:
        """Set the current client key's expiry."""
        self.instruments.key_expiry.set(unix_time)

    def key_rotated(self) -> None:
        """Count a key rotation."""
        self.instruments.key_rotations.add(1)

    def key_rejected(self) -> None:
        """Count a rejected client key."""
        self.instruments.key_rejections.add(1)

    def lockout(self) -> None:
        """Count a request refused during a lockout."""
        self.instruments.lockouts.add(1)

    def watch_circuit(self, circuit: CircuitView) -> None:
        """Report `circuit`'s state at each collection (once, however often it is watched)."""
        if not any(c is circuit for c in self._circuits):
            self._circuits.append(circuit)

    def watch_local_queue(self, queue: QueueView) -> None:
        """Report `queue`'s depth and running generations at each collection (once per queue)."""
        if not any(q is queue for q in self._queues):
            self._queues.append(queue)

    def start_span(self, name: str, *, kind: SpanKind, attributes: dict[str, str]) -> Span | None:
        """A new span under the current one; None when tracing is off."""
        if self._tracer is None:
            return None
        return self._tracer.start_span(name, kind=kind, attributes=attributes)


class Generation:
    """One model call: its duration, first chunk, tokens and error, as metrics and (when tracing) a span."""

    __slots__ = ("_instruments", "_attributes", "_started", "_span", "_ended")

    def __init__(self, telemetry: OtelTelemetry, *, provider: str, model: str | None, operation: str,
                 stream: bool) -> None:
        self._instruments = telemetry.instruments
        self._attributes: dict[str, str] = {"gen_ai.operation.name": operation, "gen_ai.provider.name": provider}
        if model:
            self._attributes["gen_ai.request.model"] = model
        self._started = perf_counter()
        self._ended = False
        self._span = telemetry.start_span(
            f"{operation} {model}" if model else operation,
            kind=SpanKind.INTERNAL if provider == "local" else SpanKind.CLIENT, attributes=self._attributes)
        if self._span is not None and stream:
            self._span.set_attribute("gateway.stream", True)

    def first_chunk(self) -> None:
        """Record the time to the first chunk."""
        self._instruments.time_to_first_chunk.record(perf_counter() - self._started, self._attributes)

    def usage(self, *, model: str, input_tokens: int, output_tokens: int, finish_reason: str | None) -> None:
        """Record tokens by type, and the answering model."""
        self._attributes["gen_ai.response.model"] = model
        self._instruments.token_usage.record(input_tokens, {**self._attributes, "gen_ai.token.type": "input"})
        self._instruments.token_usage.record(output_tokens, {**self._attributes, "gen_ai.token.type": "output"})
        if self._span is not None:
            self._span.set_attributes({"gen_ai.response.model": model, "gen_ai.usage.input_tokens": input_tokens,
                                       "gen_ai.usage.output_tokens": output_tokens})
            if finish_reason:
                self._span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])

    def fail(self, *, kind: str) -> None:
        """Mark the call failed with `kind`."""
        self._attributes["error.type"] = kind
        if self._span is not None:
            self._span.set_attribute("error.type", kind)
            self._span.set_status(StatusCode.ERROR)

    def end(self) -> None:
        """Record the duration and close the span (once)."""
        if self._ended:
            return
        self._ended = True
        self._instruments.operation_duration.record(perf_counter() - self._started, self._attributes)
        if self._span is not None:
            self._span.end()

    def __enter__(self) -> Generation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()
