"""The telemetry adapter: GenAI metric names as Prometheus reads them, OpenTelemetry spans only when tracing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.adapters.telemetry import PrometheusOtelTelemetry, telemetry_from_environment, workers
from tests.support.metrics import Scrape


class Breaker:
    state = "open"


class Queue:
    waiting, running = 3, 1


def scrape(telemetry: PrometheusOtelTelemetry) -> Scrape:
    body, content_type = telemetry.metrics_text()
    assert content_type.startswith("text/plain")
    return Scrape(body.decode())


def test_a_model_call_becomes_genai_metrics_and_a_span() -> None:
    spans = InMemorySpanExporter()
    telemetry = PrometheusOtelTelemetry(span_exporter=spans, batch=False)

    with telemetry.generation(provider="groq", model="llama-3.3-70b-versatile", operation="chat",
                              stream=True) as call:
        call.first_chunk()
        call.usage(model="llama-3.3-70b-versatile", input_tokens=12, output_tokens=5, finish_reason="stop")
    metrics = scrape(telemetry)

    common = {"gen_ai_provider_name": "groq", "gen_ai_request_model": "llama-3.3-70b-versatile"}
    assert metrics.value("gen_ai_client_token_usage_sum", gen_ai_token_type="input", **common) == 12
    assert metrics.value("gen_ai_client_token_usage_sum", gen_ai_token_type="output", **common) == 5
    assert metrics.value("gen_ai_client_operation_duration_seconds_count", gen_ai_operation_name="chat") == 1
    assert not metrics.has("gen_ai_client_token_usage_created")  # no `_created` series
    assert metrics.value("gen_ai_client_operation_time_to_first_chunk_seconds_count", **common) == 1
    [span] = spans.get_finished_spans()
    assert span.name == "chat llama-3.3-70b-versatile"
    assert span.attributes["gen_ai.provider.name"] == "groq"
    assert span.attributes["gen_ai.usage.output_tokens"] == 5
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)


def test_a_failed_call_carries_its_error_type_on_the_duration_and_the_span() -> None:
    spans = InMemorySpanExporter()
    telemetry = PrometheusOtelTelemetry(span_exporter=spans, batch=False)

    call = telemetry.generation(provider="groq", model="m", operation="chat", stream=False)
    call.fail(kind="rate_limited")
    call.end()
    call.end()  # idempotent

    assert scrape(telemetry).value("gen_ai_client_operation_duration_seconds_count", error_type="rate_limited") == 1
    [span] = spans.get_finished_spans()
    assert span.attributes["error.type"] == "rate_limited" and not span.status.is_ok


def test_gateway_events_and_watched_state_are_exported_with_the_gateway_prefix() -> None:
    telemetry = PrometheusOtelTelemetry()
    telemetry.watch_circuit(Breaker())
    telemetry.watch_local_queue(Queue())

    telemetry.upstream_error(kind="timeout")
    telemetry.retry()
    telemetry.retry()
    telemetry.fallback(reason="circuit_open")
    telemetry.key_expiry(unix_time=1_900_000_000)
    telemetry.key_rotated()
    telemetry.key_rejected()
    telemetry.lockout()
    telemetry.request_shed()
    telemetry.local_tokens_per_second(model="local/x", rate=42.0)
    telemetry.time_to_first_token(provider="local", model="local/x", seconds=0.25)
    telemetry.http_request(method="POST", route="/v1/chat/completions", status=200, seconds=0.5)
    telemetry.http_request(method="BREW", route=None, status=404, seconds=0.001)
    metrics = scrape(telemetry)

    assert metrics.value("gateway_upstream_errors_total", error_type="timeout") == 1
    assert metrics.value("gateway_upstream_retries_total") == 2
    assert metrics.value("gateway_fallbacks_total", reason="circuit_open") == 1
    assert metrics.value("gateway_key_expiry_timestamp_seconds") == 1_900_000_000
    assert metrics.value("gateway_key_rotations_total") == 1
    assert metrics.value("gateway_key_rejections_total") == 1
    assert metrics.value("gateway_auth_lockouts_total") == 1
    assert metrics.value("gateway_requests_shed_total") == 1
    assert metrics.value("gateway_local_tokens_per_second") == 42.0
    assert metrics.value("gen_ai_server_time_to_first_token_seconds_sum", gen_ai_provider_name="local") == 0.25
    assert metrics.value("gateway_circuit_state") == 2
    assert (metrics.value("gateway_local_queue_depth"), metrics.value("gateway_local_in_flight")) == (3, 1)
    assert metrics.value("process_resident_memory_bytes") > 0
    requests = "http_server_request_duration_seconds_count"
    assert metrics.value(requests, http_route="/v1/chat/completions", http_request_method="POST",
                         http_response_status_code="200") == 1
    assert metrics.value(requests, http_route="", http_request_method="_OTHER", http_response_status_code="404") == 1


def test_two_instances_keep_their_numbers_apart() -> None:
    first, second = PrometheusOtelTelemetry(), PrometheusOtelTelemetry()

    first.retry()

    assert scrape(first).value("gateway_upstream_retries_total") == 1
    assert scrape(second).value("gateway_upstream_retries_total") == 0


def test_without_an_endpoint_there_is_no_tracing(monkeypatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)

    telemetry = telemetry_from_environment(otlp_endpoint="")

    assert telemetry.tracer_provider is None and not telemetry.tracing
    assert telemetry.start_span("x", kind=None, attributes={}) is None  # type: ignore[arg-type]


def test_an_endpoint_turns_tracing_on_unless_the_sdk_is_disabled(monkeypatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")

    assert telemetry_from_environment().tracing
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not telemetry_from_environment().tracing


def test_repeated_observations_add_up_past_the_remembered_label_sets(monkeypatch) -> None:
    from app.adapters.telemetry import instruments

    monkeypatch.setattr(instruments, "CHILDREN_KEPT", 2)  # forgets its children every other new route
    telemetry = PrometheusOtelTelemetry()
    for _ in range(3):
        for route in ("/a", "/b", "/c"):
            telemetry.http_request(method="POST", route=route, status=200, seconds=0.01)
    metrics = scrape(telemetry)

    for route in ("/a", "/b", "/c"):
        assert metrics.value("http_server_request_duration_seconds_count", http_route=route,
                             http_request_method="POST", http_response_status_code="200") == 3


def test_the_shared_metrics_directory_is_made_or_refused_in_one_line(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(workers.SHARED_DIR_VARIABLE, raising=False)
    assert workers.shared_dir() is None  # metrics per process
    monkeypatch.setenv(workers.SHARED_DIR_VARIABLE, str(tmp_path / "new" / "metrics"))
    assert workers.shared_dir() == str(tmp_path / "new" / "metrics") and (tmp_path / "new" / "metrics").is_dir()
    monkeypatch.setenv(workers.SHARED_DIR_VARIABLE, " ")
    with pytest.raises(RuntimeError, match="set but empty"):
        workers.shared_dir()
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(workers.SHARED_DIR_VARIABLE, str(tmp_path / "a-file" / "metrics"))
    with pytest.raises(RuntimeError, match="Not a directory"):
        workers.shared_dir()


def test_an_ended_workers_live_gauges_leave_the_sums_and_a_race_to_drop_them_is_harmless(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ended, live = tmp_path / "gauge_livesum_999999999.db", tmp_path / f"gauge_livesum_{os.getpid()}.db"
    kept = tmp_path / "counter_999999999.db"  # what an ended worker counted stays counted
    for file in (ended, live, kept):
        file.write_bytes(b"")
    workers.drop_ended_workers(str(tmp_path))
    assert not ended.exists() and live.exists() and kept.exists()

    ended.write_bytes(b"")

    def dropped_first(pid: int, path: str) -> None:
        raise FileNotFoundError(pid)  # another worker removed the file between the glob and the remove

    monkeypatch.setattr(workers, "mark_process_dead", dropped_first)
    workers.drop_ended_workers(str(tmp_path))  # no error
