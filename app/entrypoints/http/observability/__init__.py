"""Operations at the HTTP edge: per-request observation, `/metrics`, and the log format (`/readyz` is health's).

`create_app()` calls `native_telemetry()` for FastAPI's own OpenTelemetry
support (the request's server span, when tracing) and `install_observability()`
for the rest (request count and duration by route, method and status are the
middleware's, in Prometheus).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from app.entrypoints.http.observability import metrics_route
from app.entrypoints.http.observability.logs import LogFormat, configure_logging
from app.entrypoints.http.observability.middleware import ObservabilityMiddleware
from app.ports.telemetry import Telemetry

__all__ = ["WIRED_MODULES", "configure_logging", "install_observability",
           "native_telemetry"]

WIRED_MODULES = [metrics_route]
UNTRACED_PATHS = frozenset({"/metrics"})  # a span per scrape says nothing


def native_telemetry(telemetry: Telemetry | Any) -> TelemetryConfig:
    """FastAPI's telemetry settings: its request span when the adapter traces, nothing else.

    Its metrics stay off (the middleware records request metrics in Prometheus
    at a fraction of the SDK's cost); no operation spans (dependency resolution,
    serialisation), no OpenTelemetry log records (they would carry request
    bodies), nothing configured from the environment behind our back.
    """
    tracer_provider = getattr(telemetry, "tracer_provider", None)
    return {"tracer_provider": tracer_provider, "tracing": tracer_provider is not None, "metrics": False,
            "logs": False, "operation_spans": False, "auto_configure": False,
            "exclude": lambda scope: scope.get("path") in UNTRACED_PATHS}


def install_observability(app: FastAPI, *, telemetry: Telemetry, log_format: LogFormat, log_prompts: bool) -> None:
    """Add the request middleware (outside every middleware added before) and the `/metrics` route to `app`."""
    app.add_middleware(ObservabilityMiddleware, telemetry=telemetry, json_lines=log_format == "json",
                       log_prompts=log_prompts)
    app.include_router(metrics_route.router)
