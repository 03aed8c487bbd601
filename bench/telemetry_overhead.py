"""What observability costs per request: no-op telemetry vs metrics (tracing off) vs metrics and tracing.

Drives the real app in-process over ASGI (no sockets), with the unit tests' fake
providers answering at once, so the figures are the gateway's own time per
`POST /v1/chat/completions`: CPU time of the process (all threads; steadier than
wall time on a shared machine) and wall time. Also times one model-call span
alone. Prints medians over rounds that alternate the configurations.

    python bench/telemetry_overhead.py [--requests 400] [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dependency_injector import providers  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402

from app.adapters.telemetry import PrometheusOtelTelemetry  # noqa: E402
from app.containers import Container  # noqa: E402
from app.domain.observation import NO_TELEMETRY  # noqa: E402
from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402
from tests.unit.fakes import FakeClock, FakeKeyStore, FakeLLMProvider  # noqa: E402


class DroppingExporter(SpanExporter):
    """Takes every span and keeps none: tracing's cost without a collector's."""

    def export(self, spans: Sequence[object]) -> SpanExportResult:  # type: ignore[override]
        return SpanExportResult.SUCCESS


def configurations() -> dict[str, object]:
    return {
        "no-op telemetry (baseline)": NO_TELEMETRY,
        "metrics, tracing off (default)": PrometheusOtelTelemetry(),
        "metrics and tracing on": PrometheusOtelTelemetry(span_exporter=DroppingExporter()),
    }


async def per_request_us(telemetry: object, requests: int, workdir: Path) -> tuple[float, float]:
    """CPU and wall µs per request, over `requests` sequential requests."""
    container = Container()
    container.override_providers(
        clock=providers.Object(FakeClock()), key_store=providers.Object(FakeKeyStore()),
        groq=providers.Object(FakeLLMProvider(name="groq", models=["llama-3.3-70b-versatile"], answer="hi")),
        local=providers.Object(FakeLLMProvider(name="local", models=["local/x"])),
        telemetry=providers.Object(telemetry))
    app = create_app(Settings(_env_file=None, key_file=str(workdir / "k.json"), groq_api_key="gsk_bench",
                              log_level="warning"), container)
    body = json.dumps({"model": "llama-3.3-70b-versatile",
                       "messages": [{"role": "user", "content": "hello"}]}).encode()
    async with app.router.lifespan_context(app):
        key = container.key_service().current().value
        headers = [(b"content-type", b"application/json"), (b"authorization", f"Bearer {key}".encode()),
                   (b"content-length", str(len(body)).encode())]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
                 "query_string": b"", "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000),
                 "server": ("127.0.0.1", 8000)}

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": body, "more_body": False}

        statuses: list[int] = []

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])  # type: ignore[arg-type]

        for _ in range(200):  # warm-up
            await app(dict(scope), receive, send)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(requests):
            await app(dict(scope), receive, send)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert set(statuses) == {200}, set(statuses)
    return cpu / requests * 1e6, wall / requests * 1e6


def span_ns(telemetry: object, calls: int = 20000) -> float:
    """CPU ns for one model-call span (start, usage, end) with nothing else around it."""
    generation = telemetry.generation  # type: ignore[attr-defined]
    started = time.process_time()
    for _ in range(calls):
        with generation(provider="groq", model="m", operation="chat", stream=False) as span:
            span.usage(model="m", input_tokens=3, output_tokens=5, finish_reason="stop")
    return (time.process_time() - started) / calls * 1e9


async def main(requests: int, rounds: int) -> None:
    configs = configurations()
    cpu: dict[str, list[float]] = {name: [] for name in configs}
    wall: dict[str, list[float]] = {name: [] for name in configs}
    spans: dict[str, list[float]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(rounds):
            for name, telemetry in configs.items():
                used, waited = await per_request_us(telemetry, requests, Path(tmp) / f"{round_}-{len(name)}")
                cpu[name].append(used)
                wall[name].append(waited)
                spans[name].append(span_ns(telemetry))
    baseline = cpu["no-op telemetry (baseline)"]
    print(f"POST /v1/chat/completions in-process, fake providers, {requests} requests x {rounds} rounds (medians;")
    print("'vs baseline' is the median of each round's difference, the rounds alternating the configurations)")
    print(f"{'configuration':32} {'CPU us/req':>11} {'vs baseline':>12} {'wall us/req':>12} {'span alone ns':>14}")
    for name in configs:
        paired = statistics.median(used - base for used, base in zip(cpu[name], baseline, strict=True))
        print(f"{name:32} {statistics.median(cpu[name]):11.1f} {paired:+12.1f} "
              f"{statistics.median(wall[name]):12.1f} {statistics.median(spans[name]):14.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
