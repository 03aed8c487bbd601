"""OpenTelemetry adapter of the Telemetry port: Prometheus metrics, OTLP traces when configured."""

from __future__ import annotations

import logging
import os

from opentelemetry.sdk.trace.export import SpanExporter

from app.adapters.telemetry.adapter import PrometheusOtelTelemetry

__all__ = ["PrometheusOtelTelemetry", "telemetry_from_environment"]

log = logging.getLogger(__name__)


def _otlp_exporter(endpoint: str | None) -> SpanExporter | None:
    """OTLP over HTTP/protobuf when an endpoint is configured by the standard variables; None otherwise."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return None
    from_environment = bool(os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                            or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    if not (endpoint or from_environment):
        return None
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol and protocol != "http/protobuf":
        log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported; traces go out as http/protobuf", protocol)
    # Imported only when used: the exporter brings protobuf and requests.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if from_environment:
        return OTLPSpanExporter()  # reads the endpoint, headers, timeout ... from the standard variables
    assert endpoint is not None
    return OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")  # set in .env only


def telemetry_from_environment(*, otlp_endpoint: str | None = None) -> PrometheusOtelTelemetry:
    """Metrics always; traces exported with OTLP when OTEL_EXPORTER_OTLP_ENDPOINT (or the traces one) is set."""
    exporter = _otlp_exporter(otlp_endpoint or None)
    telemetry = PrometheusOtelTelemetry(span_exporter=exporter)
    if exporter is not None:
        log.info("tracing on: spans exported with OTLP")
    return telemetry
