"""The gateway's metric instruments, named by OpenTelemetry's GenAI conventions where they name the thing.

OpenTelemetry names, and what the Prometheus exporter makes of them (dots to
underscores, the unit appended, `_total` on counters):

    gen_ai.client.token.usage                    gen_ai_client_token_usage_{bucket,sum,count}
    gen_ai.client.operation.duration             gen_ai_client_operation_duration_seconds_*
    gen_ai.client.operation.time_to_first_chunk  gen_ai_client_operation_time_to_first_chunk_seconds_*
    gen_ai.server.time_to_first_token            gen_ai_server_time_to_first_token_seconds_*
    gateway.upstream.errors                      gateway_upstream_errors_total
    gateway.upstream.retries                     gateway_upstream_retries_total
    gateway.fallbacks                            gateway_fallbacks_total
    gateway.circuit.state                        gateway_circuit_state
    gateway.local.queue.depth                    gateway_local_queue_depth
    gateway.local.in_flight                      gateway_local_in_flight
    gateway.local.tokens                         gateway_local_tokens_per_second
    gateway.key.expiry_timestamp                 gateway_key_expiry_timestamp_seconds
    gateway.key.rotations                        gateway_key_rotations_total
    gateway.key.rejections                       gateway_key_rejections_total
    gateway.auth.lockouts                        gateway_auth_lockouts_total

FastAPI's own telemetry adds `http.server.request.duration` and
`http.server.active_requests` (request count and duration by route, method, status).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

# Bucket boundaries the GenAI conventions advise.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
FIRST_TOKEN_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                       7.5, 10.0)

CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}

Observe = Callable[[], Iterable[tuple[float, dict[str, str]]]]


def _observer(read: Observe) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def callback(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, attributes) for value, attributes in read()]
    return callback


class Instruments:
    """Every instrument the gateway records into, created once per meter."""

    def __init__(self, meter: Meter, *, circuit: Observe, queue_depth: Observe, in_flight: Observe) -> None:
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS)
        self.operation_duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self.time_to_first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk", unit="s",
            description="Time from a model call's start to its first chunk (streams).",
            explicit_bucket_boundaries_advisory=FIRST_TOKEN_BUCKETS)
        self.time_to_first_token = meter.create_histogram(
            "gen_ai.server.time_to_first_token", unit="s",
            description="Time from a streaming request's arrival to its first token leaving the gateway.",
            explicit_bucket_boundaries_advisory=FIRST_TOKEN_BUCKETS)
        self.upstream_errors = meter.create_counter(
            "gateway.upstream.errors", unit="{error}", description="Failed upstream attempts, by error.type.")
        self.retries = meter.create_counter(
            "gateway.upstream.retries", unit="{retry}", description="Upstream requests tried again.")
        self.fallbacks = meter.create_counter(
            "gateway.fallbacks", unit="{request}",
            description="Requests meant for the upstream served by the local tier, by reason.")
        self.local_tokens_per_second = meter.create_gauge(
            "gateway.local.tokens", unit="{token}/s",
            description="Decode speed of the last local generation that streamed (tokens per second).")
        self.key_expiry = meter.create_gauge(
            "gateway.key.expiry_timestamp", unit="s",
            description="When the current client key expires (Unix time).")
        self.key_rotations = meter.create_counter(
            "gateway.key.rotations", unit="{rotation}", description="Client keys replaced.")
        self.key_rejections = meter.create_counter(
            "gateway.key.rejections", unit="{request}", description="Requests with a wrong or expired client key.")
        self.lockouts = meter.create_counter(
            "gateway.auth.lockouts", unit="{request}",
            description="Requests refused (429) because their address is locked out.")
        meter.create_observable_gauge(
            "gateway.circuit.state", callbacks=[_observer(circuit)],
            description="Upstream circuit breaker: 0 closed, 1 half-open, 2 open.")
        meter.create_observable_gauge(
            "gateway.local.queue.depth", callbacks=[_observer(queue_depth)], unit="{request}",
            description="Local requests waiting for a generation slot.")
        meter.create_observable_gauge(
            "gateway.local.in_flight", callbacks=[_observer(in_flight)], unit="{request}",
            description="Local generations running.")
