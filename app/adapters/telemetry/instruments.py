"""The gateway's Prometheus metrics, named by OpenTelemetry's GenAI and HTTP conventions where they name the thing.

The names are what OpenTelemetry's Prometheus exporter makes of the convention
names (dots to underscores, the unit appended, `_total` on counters), so the
same dashboards read them; a `gateway_` prefix where no convention applies:

    http.server.request.duration                 http_server_request_duration_seconds_*
    gen_ai.client.token.usage                    gen_ai_client_token_usage_{bucket,sum,count}
    gen_ai.client.operation.duration             gen_ai_client_operation_duration_seconds_*
    gen_ai.client.operation.time_to_first_chunk  gen_ai_client_operation_time_to_first_chunk_seconds_*
    gen_ai.server.time_to_first_token            gen_ai_server_time_to_first_token_seconds_*
    (gateway)                                    gateway_upstream_errors_total, gateway_upstream_retries_total,
                                                 gateway_fallbacks_total, gateway_circuit_state,
                                                 gateway_local_queue_depth, gateway_local_in_flight,
                                                 gateway_local_tokens_per_second,
                                                 gateway_key_expiry_timestamp_seconds, gateway_key_rotations_total,
                                                 gateway_key_rejections_total, gateway_auth_lockouts_total,
                                                 gateway_requests_shed_total

Recorded with prometheus-client rather than the OpenTelemetry SDK's meters: one
labelled observation costs about 1.7 µs here against about 30 µs through the
SDK (which cleans and hashes every attribute set on every call), and a request
makes several (bench/telemetry_overhead.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

# Bucket boundaries the conventions advise.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
FIRST_TOKEN_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                       7.5, 10.0)

CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}
CALL_LABELS = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")

M = TypeVar("M", bound=MetricWrapperBase)
CHILDREN_KEPT = 1024  # label sets remembered per metric (the registry keeps every one anyway)


class Children(Generic[M]):
    """A labelled metric's child for some label values, looked up once per value set.

    prometheus-client's `labels()` checks and converts the values and takes a lock on every
    call, ~2 µs; a request records four labelled observations (issue 14).
    """

    __slots__ = ("_metric", "_children")

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            if len(self._children) >= CHILDREN_KEPT:
                self._children.clear()
            child = self._children[values] = self._metric.labels(*values)
        return child


class Instruments:
    """Every metric the gateway records into, in one registry."""

    def __init__(self, registry: CollectorRegistry, *, circuit: Callable[[], float],
                 queue_depth: Callable[[], float], in_flight: Callable[[], float],
                 shared: Callable[[], float] | None = None) -> None:
        """`circuit`, `queue_depth` and `in_flight` are read for their gauges. `shared`, when the
        workers share their metrics (`workers.py`), reads this process's resident memory: those
        four gauges are then written by `refresh()`, since a scrape reads files, not callbacks.
        """
        def histogram(name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, labels, buckets=buckets, registry=registry)

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = (), *, workers: str) -> Gauge:
            # `workers`: how the workers' values combine when they share their metrics (workers.py)
            return Gauge(name, doc, labels, registry=registry, multiprocess_mode=workers)

        self.http_duration = histogram(
            "http_server_request_duration_seconds", "Duration of HTTP server requests.",
            ("http_request_method", "http_route", "http_response_status_code"), HTTP_BUCKETS)
        self.token_usage = histogram(
            "gen_ai_client_token_usage", "Number of input and output tokens used.",
            (*CALL_LABELS, "gen_ai_response_model", "gen_ai_token_type"), TOKEN_BUCKETS)
        self.operation_duration = histogram(
            "gen_ai_client_operation_duration_seconds", "GenAI operation duration.",
            (*CALL_LABELS, "gen_ai_response_model", "error_type"), DURATION_BUCKETS)
        self.time_to_first_chunk = histogram(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "Time from a model call's start to its first chunk (streams).", CALL_LABELS, FIRST_TOKEN_BUCKETS)
        self.time_to_first_token = histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time from a streaming request's arrival to its first token leaving the gateway.",
            ("gen_ai_provider_name", "gen_ai_response_model"), FIRST_TOKEN_BUCKETS)
        self.http_duration_by = Children(self.http_duration)
        self.token_usage_by = Children(self.token_usage)
        self.operation_duration_by = Children(self.operation_duration)
        self.time_to_first_chunk_by = Children(self.time_to_first_chunk)
        self.time_to_first_token_by = Children(self.time_to_first_token)
        self.upstream_errors = counter("gateway_upstream_errors", "Failed upstream attempts, by error_type.",
                                       ("error_type",))
        self.retries = counter("gateway_upstream_retries", "Upstream requests tried again.")
        self.fallbacks = counter("gateway_fallbacks",
                                 "Requests meant for the upstream served by the local tier, by reason.", ("reason",))
        self.local_tokens_per_second = gauge(
            "gateway_local_tokens_per_second", "Decode speed of the last local generation that streamed.",
            ("gen_ai_response_model",), workers="mostrecent")
        self.key_expiry = gauge("gateway_key_expiry_timestamp_seconds",
                                "When the current client key expires (Unix time).", workers="max")
        self.key_rotations = counter("gateway_key_rotations", "Client keys replaced.")
        self.key_rejections = counter("gateway_key_rejections", "Requests with a wrong or expired client key.")
        self.lockouts = counter("gateway_auth_lockouts",
                                "Requests refused (429) because their address is locked out.")
        self.shed = counter("gateway_requests_shed",
                            "Requests refused (503 overloaded) because the server was at --limit-concurrency.")
        self._read: dict[Gauge, Callable[[], float]] = {
            gauge("gateway_circuit_state", "Upstream circuit breaker: 0 closed, 1 half-open, 2 open.",
                  workers="livemax"): circuit,
            gauge("gateway_local_queue_depth", "Local requests waiting for a generation slot.",
                  workers="livesum"): queue_depth,
            gauge("gateway_local_in_flight", "Local generations running.", workers="livesum"): in_flight,
        }
        if shared is None:
            for read_gauge, read in self._read.items():
                read_gauge.set_function(read)
        else:  # prometheus-client's process collector reads one process: its memory is summed here instead
            self._read[gauge("process_resident_memory_bytes", "Resident memory size in bytes (all workers).",
                             workers="livesum")] = shared

    def refresh(self) -> None:
        """Write the read gauges' current values (when the workers share their metrics)."""
        for read_gauge, read in self._read.items():
            read_gauge.set(read())
