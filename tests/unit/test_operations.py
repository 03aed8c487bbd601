"""Metrics, spans, request ids, the overhead header and the JSON access line, through the real container.

Fakes stand in for Groq, the local model, the key store, the clock and sleep
(tests/unit/fakes.py); everything else is the real app.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from dependency_injector import providers
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.adapters.local.admission import AdmissionQueue
from app.adapters.telemetry import PrometheusOtelTelemetry
from app.containers import Container
from app.domain.errors import UpstreamUnavailable
from app.entrypoints.http.observability.logs import JsonLineFormatter
from app.main import GC_YOUNG_THRESHOLD, create_app
from app.settings import Settings
from tests.support.metrics import Scrape
from tests.unit.fakes import FakeClock, FakeKeyStore, FakeLLMProvider, FakeSleep

ADMIN = "admin-secret-for-operations-tests"
GROQ_MODEL = "llama-3.3-70b-versatile"
PROMPT = "a prompt that must stay out of spans and metrics"


class Rig:
    """The app with fakes behind the real container, and its spans in memory."""

    def __init__(self, tmp_path: Path, **settings: object) -> None:
        self.store = FakeKeyStore()
        self.groq = FakeLLMProvider(name="groq", models=[GROQ_MODEL], answer="hi from groq")
        self.local = FakeLLMProvider(name="local", models=["local/SmolLM2-135M-Instruct"], answer="hi from local")
        self.spans = InMemorySpanExporter()
        self.telemetry = PrometheusOtelTelemetry(span_exporter=self.spans, batch=False)
        container = Container()
        container.override_providers(
            clock=providers.Object(FakeClock()), key_store=providers.Object(self.store),
            groq=providers.Object(self.groq), local=providers.Object(self.local),
            sleep=providers.Object(FakeSleep()), telemetry=providers.Object(self.telemetry))
        base = {"key_file": str(tmp_path / "k.json"), "admin_secret": ADMIN, "groq_api_key": "gsk_unit",
                "auth_max_failures": 2, "_env_file": None}
        self.client = TestClient(create_app(Settings(**{**base, **settings}), container))  # type: ignore[arg-type]

    def __enter__(self) -> Rig:
        self.client.__enter__()
        self.key = self.client.get("/current-key", headers={"admin-secret": ADMIN}).json()["api_key"]
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.__exit__(*exc)

    def chat(self, *, stream: bool = False, key: str | None = None, **headers: str):  # type: ignore[no-untyped-def]
        body = {"model": GROQ_MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
        auth = {"authorization": f"Bearer {key or self.key}", **headers}
        if not stream:
            return self.client.post("/v1/chat/completions", json=body, headers=auth)
        with self.client.stream("POST", "/v1/chat/completions", json=body, headers=auth) as response:
            response.read()
            return response

    def metrics(self, **headers: str) -> Scrape:
        response = self.client.get("/metrics", headers=headers)
        assert response.status_code == 200, response.text
        return Scrape(response.text)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with Rig(tmp_path) as r:
        yield r


def test_a_mix_of_requests_moves_every_metric(rig: Rig) -> None:
    assert rig.chat().status_code == 200
    rig.groq.error = UpstreamUnavailable("Groq is unavailable: HTTP 503", kind="server_error")
    fallback = rig.chat()
    rig.groq.error = None
    streamed = rig.chat(stream=True)
    wrong = [rig.chat(key="sk-wrong") for _ in range(2)]
    locked = rig.chat(key="sk-wrong")
    metrics = rig.metrics()

    assert fallback.headers["x-provider"] == "local" and streamed.status_code == 200
    assert [r.status_code for r in wrong] == [401, 401] and locked.status_code == 429
    requests = "http_server_request_duration_seconds_count"
    route = {"http_route": "/v1/chat/completions", "http_request_method": "POST"}
    assert metrics.value(requests, http_response_status_code="200", **route) == 3
    assert metrics.value(requests, http_response_status_code="401", **route) == 2
    assert metrics.value(requests, http_response_status_code="429", **route) == 1
    assert metrics.value("gen_ai_client_token_usage_sum", gen_ai_provider_name="groq", gen_ai_token_type="output") > 0
    assert metrics.value("gen_ai_client_token_usage_sum", gen_ai_provider_name="local", gen_ai_token_type="input") > 0
    assert metrics.value("gateway_upstream_errors_total", error_type="server_error") == 3  # first try + 2 retries
    assert metrics.value("gateway_upstream_retries_total") == 2
    assert metrics.value("gateway_fallbacks_total", reason="server_error") == 1
    assert metrics.value("gen_ai_server_time_to_first_token_seconds_count", gen_ai_provider_name="groq") == 1
    assert metrics.value("gateway_key_rejections_total") == 2
    assert metrics.value("gateway_auth_lockouts_total") == 1
    assert metrics.value("gateway_key_expiry_timestamp_seconds") == rig.store.load().current.expires_at.timestamp()
    assert metrics.has("gateway_circuit_state") and metrics.value("gateway_circuit_state") == 0
    assert not metrics.has(requests, http_route="/metrics")  # scrapes do not count as traffic
    assert PROMPT not in json.dumps(sorted(metrics.label_values()))


def test_metrics_behind_the_admin_secret_take_the_header_or_a_bearer_token(tmp_path: Path) -> None:
    with Rig(tmp_path, metrics_require_admin=True) as rig:
        anonymous = rig.client.get("/metrics")
        wrong = rig.client.get("/metrics", headers={"admin-secret": "nope"})
        with_header = rig.client.get("/metrics", headers={"admin-secret": ADMIN})
        with_bearer = rig.client.get("/metrics", headers={"authorization": f"Bearer {ADMIN}"})

    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert with_header.status_code == 200 and with_bearer.status_code == 200
    assert "gen_ai" not in anonymous.text and "# TYPE" in with_bearer.text


def test_metrics_are_open_by_default(rig: Rig) -> None:
    response = rig.client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")


def test_request_ids_are_returned_and_the_overhead_header_comes_with_model_calls_only(rig: Rig) -> None:
    given = rig.chat(**{"x-request-id": "client-chosen-id.42"})
    generated = rig.chat()
    forged = rig.chat(**{"x-request-id": "bad id\" injected"})
    health = rig.client.get("/healthz")

    assert given.headers["x-request-id"] == "client-chosen-id.42"
    assert len(generated.headers["x-request-id"]) == 32 and forged.headers["x-request-id"] != "bad id\" injected"
    assert health.headers["x-request-id"] and "x-gateway-overhead-ms" not in health.headers
    assert float(given.headers["x-gateway-overhead-ms"]) >= 0


def test_spans_cover_the_request_and_each_model_call_without_prompt_or_key(rig: Rig) -> None:
    rig.groq.error = UpstreamUnavailable("down", kind="server_error")
    assert rig.chat(stream=True).status_code == 200
    spans = rig.spans.get_finished_spans()

    server = next(s for s in spans if s.attributes.get("http.route") == "/v1/chat/completions")
    groq = [s for s in spans if s.attributes.get("gen_ai.provider.name") == "groq"]
    local = [s for s in spans if s.attributes.get("gen_ai.provider.name") == "local"]
    assert server.name == "POST /v1/chat/completions"
    assert len(groq) == 3 and all(s.attributes["error.type"] == "server_error" for s in groq)
    assert groq[0].name == f"chat {GROQ_MODEL}"
    [answer] = local
    assert answer.attributes["gen_ai.usage.output_tokens"] == 3
    assert all(s.context.trace_id == server.context.trace_id for s in groq + local)
    assert all(s.parent is not None and s.parent.span_id == server.context.span_id for s in groq + local)
    every_value = json.dumps([dict(s.attributes) for s in spans], default=str)
    assert PROMPT not in every_value and rig.key not in every_value and "gsk_unit" not in every_value


@contextmanager
def logged(name: str, *, formatter: logging.Formatter | None = None,
           level: int = logging.NOTSET) -> Iterator[io.StringIO]:
    """What logger `name` writes inside the block (at `level` and above), in `formatter`'s form."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(level)
    if formatter is not None:
        handler.setFormatter(formatter)
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)


def access_lines() -> contextlib.AbstractContextManager[io.StringIO]:
    """The app.access lines written inside the block, as JSON text."""
    return logged("app.access", formatter=JsonLineFormatter())


def test_json_access_line_says_what_the_request_did(tmp_path: Path) -> None:
    with access_lines() as buffer, Rig(tmp_path, log_format="json") as rig:
        rig.groq.error = UpstreamUnavailable("down", kind="rate_limited")
        rig.chat(**{"x-request-id": "req-json-1"})

    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    [line] = [entry for entry in lines if entry.get("request_id") == "req-json-1"]
    assert line["route"] == "/v1/chat/completions" and line["status"] == 200
    assert (line["provider"], line["model"]) == ("local", "local/SmolLM2-135M-Instruct")
    assert line["fallback_reason"] == "rate_limited"
    assert line["input_tokens"] == 3 and line["output_tokens"] == 3
    assert line["latency_ms"] >= line["upstream_ms"] >= 0 and line["overhead_ms"] >= 0
    assert "prompt" not in line and PROMPT not in buffer.getvalue()


def test_text_access_line_is_the_gateways_and_leaves_the_query_string_out(tmp_path: Path) -> None:
    with access_lines() as buffer, Rig(tmp_path) as rig:
        body = {"model": GROQ_MODEL, "messages": [{"role": "user", "content": PROMPT}]}
        rig.client.post("/v1/chat/completions?api_key=sk-planted-in-query", json=body,
                        headers={"authorization": f"Bearer {rig.key}", "x-request-id": "req-text-1"})

    [line] = [json.loads(x)["message"] for x in buffer.getvalue().splitlines() if "req-text-1" in x]
    assert re.fullmatch(r'testclient:\d+ - "POST /v1/chat/completions HTTP/1.1" 200 [0-9.]+ ms '
                        rf"groq {GROQ_MODEL} req req-text-1", line), line
    assert "sk-planted" not in buffer.getvalue() and PROMPT not in buffer.getvalue()
    uvicorn_access = logging.getLogger("uvicorn.access")  # one line per request: the gateway's
    assert uvicorn_access.disabled and not uvicorn_access.hasHandlers()  # uvicorn skips building its own
    assert not (logging.logThreads or logging.logProcesses or logging.logMultiprocessing)  # no format shows them
    assert logging._srcfile is None  # nor the calling line


def test_log_prompts_puts_the_prompt_in_the_access_line(tmp_path: Path) -> None:
    with access_lines() as buffer, Rig(tmp_path, log_format="json", log_prompts=True) as rig:
        rig.chat(**{"x-request-id": "req-json-2"})

    [line] = [json.loads(x) for x in buffer.getvalue().splitlines() if "req-json-2" in x]
    assert line["prompt"] == f"user: {PROMPT}"


DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
                "unless", "inf", "nan"}


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions, keywords or labels."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        followed_by = expr[match.end():].lstrip()[:1]
        if followed_by != "(" and match.group() not in PROMQL_WORDS:
            names.add(match.group())
    return names


def test_every_dashboard_query_names_a_metric_the_server_exports(tmp_path: Path) -> None:
    with Rig(tmp_path) as rig:
        rig.local.admission = AdmissionQueue(slots=1, max_waiting=2)  # type: ignore[attr-defined]
        rig.client.__exit__(None, None, None)  # restart, so the lifespan sees the local queue
        rig.client.__enter__()
        rig.chat()
        rig.chat(stream=True)
        rig.groq.error = UpstreamUnavailable("down", kind="rate_limited")
        rig.chat(stream=True)
        rig.client.post("/local-chat", json={"prompt": "one two three"}, headers={"x-api-key": rig.key})
        for _ in range(3):
            rig.chat(key="sk-wrong")
        exported = rig.metrics().names()
    queries = dashboard_queries()

    assert len(queries) >= 15
    missing = {name for expr in queries for name in metric_names(expr)} - exported
    assert not missing, f"the dashboard reads metrics the server does not export: {sorted(missing)}"


def test_the_dashboard_check_catches_a_misspelt_metric() -> None:
    names = metric_names('histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_secs_bucket'
                         '{http_route=~"/chat|/x"}[5m])))')

    assert names == {"http_server_request_duration_secs_bucket"}


def test_start_up_objects_are_frozen_while_serving_and_handed_back_at_shutdown(tmp_path: Path) -> None:
    before = gc.get_threshold()
    with Rig(tmp_path) as rig:
        assert gc.get_freeze_count() > 10_000  # the app, FastAPI, pydantic, ...: out of the collector's sight
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
        assert rig.chat().status_code == 200
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


@pytest.mark.parametrize("in_worker", [True, False])
def test_a_worker_process_says_its_metrics_are_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       in_worker: bool) -> None:
    # uvicorn's --workers run the app in spawned processes, which have a parent process
    monkeypatch.setattr("multiprocessing.parent_process", (lambda: object()) if in_worker else (lambda: None))
    with logged("app", level=logging.WARNING) as buffer, Rig(tmp_path) as rig:
        assert rig.metrics().value("http_server_request_duration_seconds_count", http_route="/current-key") == 1
    assert ("PROMETHEUS_MULTIPROC_DIR" in buffer.getvalue()) is in_worker
