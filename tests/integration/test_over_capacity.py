"""A request over `--limit-concurrency`, under a real uvicorn served as `make serve` serves: the official
`openai` SDK sees a 503 in OpenAI's envelope with Retry-After, not uvicorn's plain text, and the
operator sees it in the access log and the request metrics."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import AppServer

LIMIT = 2
SERVE_FLAGS = ("--http", "app.entrypoints.http.head_guard:HeadGuardedProtocol", "--limit-concurrency", str(LIMIT))
ADMIN = "capacity-admin-secret-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    env = {"ADMIN_SECRET": ADMIN, "LOCAL_RUNNER": "llamacpp"}  # no torch import: a small, quick server
    with AppServer(tmp_path_factory.mktemp("capacity"), env, extra_args=SERVE_FLAGS) as app:
        yield app


def held_connections(server: AppServer, count: int) -> list[socket.socket]:
    """Connections that ask nothing: each holds one of the server's places."""
    return [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(count)]


def test_a_request_over_the_limit_gets_the_envelope_and_retry_after(server: AppServer) -> None:
    held = held_connections(server, LIMIT - 1)  # with the SDK's own, the limit is reached
    try:
        with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="sk-any", max_retries=0, timeout=10) as client:
            with pytest.raises(openai.APIStatusError) as caught:
                client.models.list()
    finally:
        for sock in held:
            sock.close()
    error = caught.value
    assert error.status_code == 503
    assert error.response.headers["retry-after"] == "1"
    assert error.response.headers["content-type"] == "application/json"
    assert error.code == "overloaded"
    assert error.body == {"message": f"The server is at its limit of {LIMIT} open connections and requests "
                                     "in flight; retry in 1 s.", "type": "api_error", "param": None,
                          "code": "overloaded"}


def test_once_a_place_is_free_the_sdk_gets_its_answer(server: AppServer) -> None:
    """The 503 closed its connection, and the held ones are gone: the same client is served."""
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="sk-wrong", max_retries=0, timeout=10) as client:
        with pytest.raises(openai.AuthenticationError):  # through the app now: a wrong key is a 401
            client.models.list()


def shed_requests(server: AppServer) -> tuple[float, float]:
    """The requests to `GET /v1/models` the metrics count as answered 503, and the requests counted as shed."""
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    samples = [sample for family in text_string_to_metric_families(text) for sample in family.samples]
    answered_503 = sum(sample.value for sample in samples
                       if sample.name == "http_server_request_duration_seconds_count"
                       and sample.labels.get("http_route") == "/v1/models"
                       and sample.labels.get("http_response_status_code") == "503")
    return answered_503, sum(sample.value for sample in samples if sample.name == "gateway_requests_shed_total")


def test_a_shed_request_is_counted_and_logged(server: AppServer) -> None:
    before = shed_requests(server)
    held = held_connections(server, LIMIT - 1)
    try:
        answer = httpx.get(f"{server.base_url}/v1/models", headers={"x-request-id": "shed-0123"}, timeout=10)
    finally:
        for sock in held:
            sock.close()
    assert answer.status_code == 503
    assert answer.headers["x-request-id"] == "shed-0123"
    assert shed_requests(server) == (before[0] + 1, before[1] + 1)
    assert '"GET /v1/models HTTP/1.1" 503' in server.log()
    assert "req shed-0123" in server.log()

