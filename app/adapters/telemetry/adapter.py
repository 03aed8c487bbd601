"""Telemetry as Prometheus metrics (prometheus-client) and OpenTelemetry spans (exported with OTLP when configured).

Each instance owns its Prometheus registry and its tracer provider (no global
state), so several apps in one process keep their numbers apart. Tracing is
off unless a span exporter is given: then no span object is ever made on the
hot path (`bench/telemetry_overhead.py` measures it).
"""

from __future__ import annotations

import asyncio
import logging
import os
from time import perf_counter

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer
from prometheus_client import CollectorRegistry, ProcessCollector, disable_created_metrics
from prometheus_client.exposition import choose_encoder

from app.adapters.telemetry import workers
from app.adapters.telemetry.instruments import CIRCUIT_STATES, Instruments
from app.ports.telemetry import CircuitView, QueueView

SERVICE_NAME = "ai-api-server"
_SCOPE = "app.gateway"
_KNOWN_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"})

log = logging.getLogger(__name__)

disable_created_metrics()  # no `_created` series beside every counter and histogram


class PrometheusOtelTelemetry:
    """The Telemetry port: metrics for `/metrics` (`metrics_text()`), spans for an OTLP collector.

    `span_exporter`: where finished spans go (None: tracing off). `batch=False`
    exports each span as it ends (tests); the default batches off the hot path.
    """

    def __init__(self, *, span_exporter: SpanExporter | None = None, batch: bool = True,
                 service_name: str = SERVICE_NAME) -> None:
        self.shared_dir = workers.shared_dir()  # several workers summed (workers.py), or None
        self.registry = CollectorRegistry()
        if self.shared_dir is None:
            ProcessCollector(registry=self.registry)  # process_resident_memory_bytes and friends
        self.tracer_provider: TracerProvider | None = None
        self._tracer: Tracer | None = None
        if span_exporter is not None:
            attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
            self.tracer_provider = TracerProvider(resource=Resource.create(attributes))
            processor = BatchSpanProcessor(span_exporter) if batch else SimpleSpanProcessor(span_exporter)
            self.tracer_provider.add_span_processor(processor)
            self._tracer = self.tracer_provider.get_tracer(_SCOPE)
        self._key_expiry: float | None = None
        self._circuit: CircuitView | None = None
        self._queue: QueueView | None = None
        self.instruments = Instruments(
            self.registry,
            circuit=lambda: CIRCUIT_STATES.get(self._circuit.state, 2) if self._circuit else 0,
            queue_depth=lambda: self._queue.waiting if self._queue else 0,
            in_flight=lambda: self._queue.running if self._queue else 0,
            shared=None if self.shared_dir is None else workers.resident_bytes)

    @property
    def tracing(self) -> bool:
        """Whether spans are recorded."""
        return self._tracer is not None

    def metrics_text(self, accept: str | None = None) -> tuple[bytes, str]:
        """Every metric in the format the scraper's `Accept` asks for (Prometheus text by default), and its type."""
        encode, content_type = choose_encoder(accept or "")
        if self.shared_dir is None:
            return encode(self.registry), content_type
        self._share()
        return encode(workers.shared_registry(self.shared_dir)), content_type

    async def share_with_workers(self) -> None:
        """With several workers sharing their metrics, keep this one's gauges current (until cancelled,
        then it leaves the sums); with metrics per process, return at once."""
        if self.shared_dir is None:
            return
        try:
            while True:
                try:
                    self._share()
                except OSError as exc:  # the directory went away or filled up: the next tick tries again
                    log.warning("could not share this worker's metrics in %s: %s", self.shared_dir, exc)
                await asyncio.sleep(workers.REFRESH_SECONDS)
        finally:
            workers.drop_this_worker(self.shared_dir)

    def _share(self) -> None:
        assert self.shared_dir is not None
        self.instruments.refresh()
        workers.drop_ended_workers(self.shared_dir)

    def http_request(self, *, method: str, route: str | None, status: int, seconds: float) -> None:
        """Record one HTTP request by route template (empty when none matched), method and status."""
        self.instruments.http_duration_by(method if method in _KNOWN_METHODS else "_OTHER", route or "",
                                          str(status)).observe(seconds)

    def generation(self, *, provider: str, model: str | None, operation: str, stream: bool) -> Generation:
        """Start a span (when tracing) and a duration measurement around one model call."""
        return Generation(self, provider=provider, model=model, operation=operation, stream=stream)

    def time_to_first_token(self, *, provider: str, model: str, seconds: float) -> None:
        """Record a streaming answer's time to first token at the gateway."""
        self.instruments.time_to_first_token_by(provider, model).observe(seconds)

    def upstream_error(self, *, kind: str) -> None:
        """Count a failed upstream attempt by kind."""
        self.instruments.upstream_errors.labels(kind).inc()

    def retry(self) -> None:
        """Count an upstream retry."""
        self.instruments.retries.inc()

    def fallback(self, *, reason: str) -> None:
        """Count a fallback to the local tier by reason."""
        self.instruments.fallbacks.labels(reason).inc()

    def local_tokens_per_second(self, *, model: str, rate: float) -> None:
        """Set the last local decode speed."""
        self.instruments.local_tokens_per_second.labels(model).set(rate)

    def key_expiry(self, *, unix_time: float) -> None:
        """Set the current client key's expiry (reported on every request: recorded only when it moves)."""
        if unix_time != self._key_expiry:
            self._key_expiry = unix_time
            self.instruments.key_expiry.set(unix_time)

    def key_rotated(self) -> None:
        """Count a key rotation."""
        self.instruments.key_rotations.inc()

    def key_rejected(self) -> None:
        """Count a rejected client key."""
        self.instruments.key_rejections.inc()

    def lockout(self) -> None:
        """Count a request refused during a lockout."""
        self.instruments.lockouts.inc()

    def request_shed(self) -> None:
        """Count a request refused over the concurrency limit."""
        self.instruments.shed.inc()

    def watch_circuit(self, circuit: CircuitView) -> None:
        """Report `circuit`'s state at each scrape."""
        self._circuit = circuit

    def watch_local_queue(self, queue: QueueView) -> None:
        """Report `queue`'s depth and running generations at each scrape."""
        self._queue = queue

    def start_span(self, name: str, *, kind: SpanKind, attributes: dict[str, str]) -> Span | None:
        """A new span under the current one; None when tracing is off."""
        if self._tracer is None:
            return None
        return self._tracer.start_span(name, kind=kind, attributes=attributes)


class Generation:
    """One model call: its duration, first chunk, tokens and error, as metrics and (when tracing) a span."""

    __slots__ = ("_instruments", "_labels", "_response_model", "_error", "_started", "_span", "_ended")

    def __init__(self, telemetry: PrometheusOtelTelemetry, *, provider: str, model: str | None, operation: str,
                 stream: bool) -> None:
        self._instruments = telemetry.instruments
        self._labels = (operation, provider, model or "")
        self._response_model = ""
        self._error = ""
        self._started = perf_counter()
        self._ended = False
        self._span = None
        if telemetry.tracing:
            attributes = {"gen_ai.operation.name": operation, "gen_ai.provider.name": provider}
            if model:
                attributes["gen_ai.request.model"] = model
            self._span = telemetry.start_span(
                f"{operation} {model}" if model else operation,
                kind=SpanKind.INTERNAL if provider == "local" else SpanKind.CLIENT, attributes=attributes)
            if self._span is not None and stream:
                self._span.set_attribute("gateway.stream", True)

    def first_chunk(self) -> None:
        """Record the time to the first chunk."""
        self._instruments.time_to_first_chunk_by(*self._labels).observe(perf_counter() - self._started)

    def usage(self, *, model: str, input_tokens: int, output_tokens: int, finish_reason: str | None) -> None:
        """Record tokens by type, and the answering model."""
        self._response_model = model
        self._instruments.token_usage_by(*self._labels, model, "input").observe(input_tokens)
        self._instruments.token_usage_by(*self._labels, model, "output").observe(output_tokens)
        if self._span is not None:
            self._span.set_attributes({"gen_ai.response.model": model, "gen_ai.usage.input_tokens": input_tokens,
                                       "gen_ai.usage.output_tokens": output_tokens})
            if finish_reason:
                self._span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])

    def fail(self, *, kind: str) -> None:
        """Mark the call failed with `kind`."""
        self._error = kind
        if self._span is not None:
            self._span.set_attribute("error.type", kind)
            self._span.set_status(StatusCode.ERROR)

    def end(self) -> None:
        """Record the duration and close the span (once)."""
        if self._ended:
            return
        self._ended = True
        self._instruments.operation_duration_by(*self._labels, self._response_model, self._error) \
            .observe(perf_counter() - self._started)
        if self._span is not None:
            self._span.end()

    def __enter__(self) -> Generation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()
