"""The client key at the HTTP edge, under a real uvicorn: checked before the body is read,
and brute-force damping that a forged X-Forwarded-For cannot escape."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from app.domain.keys import random_key_value
from tests.support.server import AppServer

# Just under MAX_BODY_BYTES (1 MiB): a larger body is refused with 413 by the limits before any key check.
UNDER_THE_LIMIT = 1024 * 1024 - 1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """One server: no Groq key, a file key store, a lockout after 3 wrong keys, proxy headers not trusted."""
    workdir = tmp_path_factory.mktemp("client-key-http")
    env = {"KEY_FILE": str(workdir / "current_key.json"), "AUTH_MAX_FAILURES": "3",
           "AUTH_FAILURE_WINDOW_SECONDS": "600", "TRUST_PROXY_HEADERS": "false"}
    with AppServer(workdir, env) as running:
        yield running


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body, read from `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in header_lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("credential", [
    {},
    {"Authorization": f"Bearer {random_key_value()}"},
    {"x-api-key": "sk-not-even-the-shape"},
])
def test_a_body_without_the_key_is_refused_before_it_is_sent(server: AppServer, credential):
    headers = {"Host": "127.0.0.1", "Content-Type": "application/json",
               "Content-Length": str(UNDER_THE_LIMIT), "X-Forwarded-For": "198.51.100.7", **credential}
    head = "POST /v1/chat/completions HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.encode("ascii") + b"\r\n")  # the headers only: not one byte of the body
        status, response_headers, body = read_response(sock)
    assert status == 401
    assert response_headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200


def test_every_client_key_route_is_guarded_before_its_body_and_others_are_not(server: AppServer):
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        guarded = [("POST", "/chat"), ("POST", "/local-chat"), ("POST", "/v1/chat/completions"),
                   ("POST", "/chat/completions"), ("POST", "/v1/completions"), ("POST", "/completions"),
                   ("GET", "/v1/models"), ("GET", "/models"), ("GET", "/v1/models/local/x"),
                   ("GET", "/models/local/x")]
        for method, path in guarded:  # invalid JSON, no key: 400 if the body were parsed first
            response = http.request(method, path, content=b"{not json",
                                    headers={"content-type": "application/json"})
            assert response.status_code == 401, (method, path, response.text)
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 200
        assert http.get("/current-key").status_code == 403  # admin: its own guard
        assert http.get("/nowhere").status_code == 404


def test_a_forged_x_forwarded_for_on_every_attempt_is_still_locked_out(server: AppServer):
    # uvicorn runs with --no-proxy-headers, as `make serve` and render.yaml start it: otherwise it
    # would take each forged header from 127.0.0.1 as the client, and this client would never be locked out.
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        statuses = [http.get("/v1/models", headers={"Authorization": f"Bearer {random_key_value()}",
                                                     "X-Forwarded-For": f"203.0.113.{attempt}"}).status_code
                    for attempt in range(1, 6)]
        refused = http.get("/v1/models", headers={"Authorization": f"Bearer {random_key_value()}"})
    # 3 wrong keys from this peer lock it out (earlier tests may have spent some of them); with
    # a new address per attempt believed, all five would be 401
    assert statuses[-2:] == [429, 429] and statuses == sorted(statuses) and statuses.count(401) <= 3
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_attempts"
