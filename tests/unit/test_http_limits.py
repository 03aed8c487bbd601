"""Limits before work, through the real app and container with fakes: body and head size,
the body-read deadline, and the caps on messages and prompt characters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.unit.http_app import Fakes, chat_body, current_key, make_client

LIMIT = 4096


@pytest.fixture
def client(fakes: Fakes, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(fakes, tmp_path, max_body_bytes=LIMIT, body_read_timeout_seconds=0.3) as c:
        yield c


def padded_body(size: int) -> bytes:
    """A valid chat completions body of exactly `size` bytes."""
    base = json.dumps(chat_body(user=""), separators=(",", ":")).encode()
    return base.replace(b'"user":""', b'"user":"' + b"u" * (size - len(base)) + b'"')


async def call(app: FastAPI, *, path: str, headers: Sequence[tuple[bytes, bytes]], parts: Sequence[bytes],
               stall: bool, method: str = "POST") -> list[dict[str, Any]]:
    """Drive the ASGI app as a server would: the body in `parts`, then stalls for good if `stall`.

    Returns the messages the app sent.
    """
    pending = list(parts)
    sent: list[dict[str, Any]] = []
    finished = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if pending:
            part = pending.pop(0)
            return {"type": "http.request", "body": part, "more_body": bool(pending) or stall}
        if stall:
            await asyncio.Event().wait()  # a client that stopped sending and never leaves
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            finished.set()

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": method, "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000),
             "headers": [(b"content-type", b"application/json"), *headers]}
    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    return sent


def response_of(sent: list[dict[str, Any]]) -> tuple[int, dict[bytes, bytes], dict[str, Any]]:
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, sent  # one response only: the app's own answer was dropped
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return starts[0]["status"], dict(starts[0]["headers"]), json.loads(body)


# --- body size ----------------------------------------------------------------------------------

def test_a_body_over_the_limit_is_413_before_the_key_is_looked_at(client: TestClient, fakes: Fakes) -> None:
    response = client.post("/v1/chat/completions", content=padded_body(LIMIT + 1),
                           headers={"content-type": "application/json"})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert response.headers["connection"] == "close"
    assert fakes.groq.requests == []


def test_a_body_at_the_limit_is_served(client: TestClient, fakes: Fakes) -> None:
    response = client.post("/v1/chat/completions", content=padded_body(LIMIT),
                           headers={"content-type": "application/json", "x-api-key": current_key(client)})

    assert response.status_code == 200, response.text
    assert len(fakes.groq.requests) == 1


async def test_a_chunked_body_is_cut_at_the_limit_while_it_arrives(client: TestClient, fakes: Fakes) -> None:
    key = current_key(client).encode()
    parts = [b'{"messages": [', *[b" " * 1024] * 100]  # 100 KiB, no Content-Length

    sent = await call(client.app, path="/v1/chat/completions", parts=parts, stall=False,  # type: ignore[arg-type]
                      headers=[(b"transfer-encoding", b"chunked"), (b"x-api-key", key)])

    status, headers, body = response_of(sent)
    assert status == 413 and body["error"]["code"] == "request_too_large"
    assert headers[b"connection"] == b"close"
    assert fakes.groq.requests == []


# --- body deadline ------------------------------------------------------------------------------

async def test_a_half_sent_body_is_cut_off_at_the_deadline(client: TestClient, fakes: Fakes) -> None:
    key = current_key(client).encode()

    sent = await call(client.app, path="/chat", parts=[b'{"prompt": "hel'], stall=True,  # type: ignore[arg-type]
                      headers=[(b"content-length", b"100"), (b"x-api-key", key)])

    status, headers, body = response_of(sent)
    assert status == 408 and body["error"]["code"] == "request_timeout"
    assert headers[b"connection"] == b"close"
    assert fakes.groq.requests == []


async def test_an_endless_chunked_body_is_cut_off(client: TestClient) -> None:
    key = current_key(client).encode()  # without one, the key check refuses it before the body is read

    sent = await call(client.app, path="/chat", parts=[b"{"], stall=True,  # type: ignore[arg-type]
                      headers=[(b"transfer-encoding", b"chunked"), (b"x-api-key", key)])

    assert response_of(sent)[0] in (408, 413)


async def test_an_answer_given_without_reading_the_body_closes_the_connection(client: TestClient) -> None:
    sent = await call(client.app, method="GET", path="/healthz", parts=[], stall=True,  # type: ignore[arg-type]
                      headers=[(b"content-length", b"50")])

    status, headers, body = response_of(sent)
    assert status == 200 and body == {"status": "ok"}
    assert headers[b"connection"] == b"close"


def test_a_complete_body_keeps_the_connection(client: TestClient) -> None:
    response = client.post("/chat", json={"prompt": "hi"}, headers={"x-api-key": current_key(client)})

    assert response.status_code == 200
    assert "connection" not in response.headers


# --- head size ----------------------------------------------------------------------------------

def test_headers_over_the_limit_are_431(fakes: Fakes, tmp_path: Path) -> None:
    with make_client(fakes, tmp_path, max_header_bytes=2048) as client:
        response = client.get("/healthz", headers={"x-padding": "p" * 2048})

    assert response.status_code == 431
    assert response.json()["error"]["code"] == "headers_too_large"


# --- messages and characters --------------------------------------------------------------------

def test_more_messages_than_allowed_is_400_naming_messages(fakes: Fakes, tmp_path: Path) -> None:
    with make_client(fakes, tmp_path, max_messages=2) as client:
        key = current_key(client)
        ok = client.post("/v1/chat/completions", json=chat_body(messages=[{"role": "user", "content": "a"}] * 2),
                         headers={"x-api-key": key})
        refused = client.post("/v1/chat/completions", json=chat_body(messages=[{"role": "user", "content": "a"}] * 3),
                              headers={"x-api-key": key})

    assert ok.status_code == 200
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "messages"
    assert "2" in refused.json()["error"]["message"]
    assert len(fakes.groq.requests) == 1


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/v1/chat/completions", chat_body(messages=[{"role": "system", "content": "s" * 6},
                                                 {"role": "user", "content": "u" * 5}]), "messages"),
    ("/v1/completions", {"model": "m", "prompt": "p" * 11}, "prompt"),
    ("/chat", {"prompt": "p" * 11}, "prompt"),
    ("/local-chat", {"prompt": "p" * 11}, "prompt"),
])
def test_a_prompt_over_the_character_cap_is_400_before_any_provider(fakes: Fakes, tmp_path: Path, path: str,
                                                                    body: dict[str, Any], param: str) -> None:
    with make_client(fakes, tmp_path, max_prompt_chars=10) as client:
        response = client.post(path, json=body, headers={"x-api-key": current_key(client)})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert fakes.groq.requests == [] and fakes.local.requests == []


def test_a_prompt_at_the_character_cap_is_served(fakes: Fakes, tmp_path: Path) -> None:
    with make_client(fakes, tmp_path, max_prompt_chars=10) as client:
        response = client.post("/chat", json={"prompt": "p" * 10}, headers={"x-api-key": current_key(client)})

    assert response.status_code == 200
