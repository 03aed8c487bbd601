"""Hostile and slow clients against the real app under a real uvicorn, served as in production
(`--http app.entrypoints.http.head_guard:HeadGuardedProtocol`): raw sockets on loopback, the
server's memory read from /proc/<pid>/status."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import AppServer

ADMIN = "hostile-admin-secret-0123456789"
SERVE_FLAGS = ("--http", "app.entrypoints.http.head_guard:HeadGuardedProtocol")
MiB = 1024 * 1024
# What the server may keep after a hostile request: far less than what the client sent (30-64 MB).
RSS_GROWTH_BOUND = 16 * MiB
DEADLINE = 1  # seconds, for the head and the body in this server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    env = {"ADMIN_SECRET": ADMIN, "LOCAL_RUNNER": "llamacpp",  # no torch import: a small, quick server
           "HEADER_READ_TIMEOUT_SECONDS": str(DEADLINE), "BODY_READ_TIMEOUT_SECONDS": str(DEADLINE)}
    with AppServer(tmp_path_factory.mktemp("hostile"), env, extra_args=SERVE_FLAGS) as app:
        yield app


@pytest.fixture(scope="module")
def key(server: AppServer) -> str:
    return httpx.get(f"{server.base_url}/current-key", headers={"admin-secret": ADMIN}, timeout=10).json()["api_key"]


def rss(server: AppServer) -> int:
    """The server's resident memory, in bytes."""
    status = Path(f"/proc/{server.pid}/status").read_text()
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(kib) * 1024


def connect(server: AppServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict]:
    """Status and JSON body of the one response on `sock`, read until the server closes it."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def push(sock: socket.socket, piece: bytes, total: int) -> int:
    """Send `piece` repeatedly, up to `total` bytes, until the server answers or closes; bytes sent."""
    sent = 0
    try:
        while sent < total:
            sock.sendall(piece)
            sent += len(piece)
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered (or closed) already
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def test_a_30_mb_body_without_a_key_is_413_before_a_byte_of_it_is_sent(server: AppServer) -> None:
    before = rss(server)
    sock = connect(server)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % (30 * MiB))

    status, body = read_response(sock)  # nothing of the body sent yet
    sent = push(sock, b"x" * MiB, 30 * MiB)  # the body anyway: the server has closed

    assert status == 413 and body["error"]["code"] == "request_too_large"
    assert sent < 30 * MiB
    assert rss(server) - before < RSS_GROWTH_BOUND


def chunked_head(key: str) -> bytes:
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nAuthorization: Bearer " + key.encode() + b"\r\n\r\n")


CHUNK = b"10000\r\n" + b" " * 0x10000 + b"\r\n"  # 64 KiB of JSON whitespace, chunk-framed


def response_or_reset(sock: socket.socket) -> int | None:
    """The response's status, or None when the server's close reset the connection first
    (a server that closes with unread input resets it, and the reset may overtake the answer)."""
    try:
        return read_response(sock)[0]
    except ConnectionResetError:
        return None


def test_a_chunked_body_is_answered_413_once_past_the_limit(server: AppServer, key: str) -> None:
    sock = connect(server)
    sock.sendall(chunked_head(key) + CHUNK * 17)  # 1088 KiB, no Content-Length: just past 1 MiB

    status, body = read_response(sock)

    assert status == 413 and body["error"]["code"] == "request_too_large"


def test_a_30_mb_chunked_body_is_cut_at_the_limit(server: AppServer, key: str) -> None:
    before = rss(server)
    sock = connect(server)
    sock.sendall(chunked_head(key))

    sent = push(sock, CHUNK, 30 * MiB)

    assert response_or_reset(sock) in (413, None)
    assert sent < 30 * MiB
    assert rss(server) - before < RSS_GROWTH_BOUND


def test_a_head_past_the_limit_is_answered_431(server: AppServer) -> None:
    sock = connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (80 * 1024))  # not even finished

    status, body = read_response(sock)

    assert status == 431 and body["error"]["code"] == "headers_too_large"


def test_a_64_mb_header_is_refused_while_it_is_read(server: AppServer) -> None:
    before = rss(server)
    sock = connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ")

    sent = push(sock, b"a" * MiB, 64 * MiB)

    assert response_or_reset(sock) in (431, None)
    assert sent < 64 * MiB
    assert rss(server) - before < RSS_GROWTH_BOUND
    assert httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200


def test_a_half_sent_body_is_cut_off_at_the_deadline(server: AppServer, key: str) -> None:
    sock = connect(server)
    sock.sendall(b"POST /chat HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
                 b"x-api-key: " + key.encode() + b"\r\n\r\n{\"prompt\": \"hel")

    status, body = read_response(sock)  # returns once the server closes the connection

    assert status == 408 and body["error"]["code"] == "request_timeout"


def test_a_half_sent_head_is_cut_off_at_the_deadline(server: AppServer) -> None:
    sock = connect(server)
    sock.sendall(b"POST /chat HTTP/1.1\r\nHost: t\r\nContent-Ty")

    status, body = read_response(sock)

    assert status == 408 and body["error"]["code"] == "request_timeout"


def test_many_slow_clients_are_all_let_go(server: AppServer, key: str) -> None:
    half_heads = [connect(server) for _ in range(20)]
    half_bodies = [connect(server) for _ in range(20)]
    for sock in half_heads:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
    for sock in half_bodies:
        sock.sendall(b"POST /chat HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\nx-api-key: " + key.encode() + b"\r\n\r\n1\r\n{\r\n")
    still_open = set(half_heads + half_bodies)

    deadline = time.monotonic() + 10 * DEADLINE + 10  # bounds the test, not the server's speed
    while still_open and time.monotonic() < deadline:
        for sock in select.select(list(still_open), [], [], 1)[0]:
            if not sock.recv(65536):
                still_open.discard(sock)
    assert not still_open
    assert httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200
