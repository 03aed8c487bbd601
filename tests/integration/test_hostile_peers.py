"""Faults not covered elsewhere, through the whole app under uvicorn (Groq at the fake Groq, no fallback):
a Groq that resets mid-body or sends a huge body, a client that sends invalid UTF-8. Each gets a
well-formed OpenAI error within the deadline; the server stays up and its memory stays bounded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.fake_groq import BrokenStream, FakeGroq, Huge
from tests.support.gateway import Gateway, served

MiB = 1024 * 1024
# What the server may keep after a fault: far less than a huge body (32 MiB), with room for
# allocator noise.
RSS_GROWTH_BOUND = 24 * MiB
DEADLINE = 5.0  # GROQ_TIMEOUT_SECONDS here


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_groq_server: FakeGroq) -> Iterator[Gateway]:
    with served(tmp_path_factory.mktemp("peers"), fake_groq_server, LOCAL_RUNNER="llamacpp",
                FALLBACK_TO_LOCAL="false", GROQ_TIMEOUT_SECONDS=str(DEADLINE),
                GROQ_FIRST_CHUNK_TIMEOUT_SECONDS=str(DEADLINE)) as running:
        yield running


def rss(gateway: Gateway) -> int:
    """The server's resident memory, in bytes."""
    status = Path(f"/proc/{gateway.server.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) * 1024


def post(gateway: Gateway, body: bytes | dict, *, stream: bool = False) -> httpx.Response:
    """POST /v1/chat/completions with the key; the whole answer read."""
    headers = {"authorization": f"Bearer {gateway.key}", "content-type": "application/json"}
    payload = {"content": body} if isinstance(body, bytes) else {"json": {**body, "stream": stream}}
    with httpx.Client(base_url=gateway.base_url, timeout=DEADLINE * 4) as client:
        response = client.post("/v1/chat/completions", headers=headers, **payload)
        response.read()
    return response


def assert_error(response: httpx.Response, status: set[int]) -> dict:
    assert response.status_code in status, response.text
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text
    return error


# A Groq model by name, with FALLBACK_TO_LOCAL=false: a failure is the client's to see, not the local model's.
CHAT = {"model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "hello"}]}


@pytest.mark.parametrize("behaviour", [BrokenStream(chunks=0), Huge(size=32 * MiB)],
                         ids=["reset-mid-body", "huge-body"])
def test_a_broken_whole_answer_from_groq_is_a_clean_error(fake_groq: FakeGroq, gateway: Gateway,
                                                          behaviour: object) -> None:
    before = rss(gateway)
    fake_groq.script(*[behaviour] * 3)  # the same on any retry
    started = time.monotonic()
    response = post(gateway, CHAT)

    assert_error(response, {502, 503})
    assert time.monotonic() - started < DEADLINE * 2
    assert rss(gateway) - before < RSS_GROWTH_BOUND
    fake_groq.reset()
    assert post(gateway, CHAT).status_code == 200  # still up, and still answering


def test_a_huge_stream_event_from_groq_ends_the_stream_cleanly(fake_groq: FakeGroq, gateway: Gateway) -> None:
    before = rss(gateway)
    fake_groq.script(*[Huge(size=32 * MiB)] * 3)
    started = time.monotonic()
    response = post(gateway, CHAT, stream=True)

    assert time.monotonic() - started < DEADLINE * 2
    assert rss(gateway) - before < RSS_GROWTH_BOUND
    if response.status_code == 200:  # the refusal came after the stream began: it ends in an error event
        assert '"error"' in response.text
    else:
        assert_error(response, {502, 503})
    fake_groq.reset()
    assert post(gateway, CHAT).status_code == 200


@pytest.mark.parametrize("body", [b'{"model": "m", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
                                  b"\xc3\x28\xa0\xa1", b'{"messages": "\xed\xa0\x80"}'],
                         ids=["invalid-byte-in-a-string", "not-utf8-at-all", "encoded-surrogate"])
def test_invalid_utf8_from_a_client_is_400(gateway: Gateway, body: bytes) -> None:
    error = assert_error(post(gateway, body), {400})
    assert error["type"] == "invalid_request_error"
    assert post(gateway, CHAT).status_code in (200, 502, 503)  # still up
