"""A client that leaves cancels the work done for it: the real app under uvicorn, Groq at the fake Groq.

Under uvicorn's own protocol the app learns of it from `receive`; under the protocol
`make serve` runs (`head_guard.py`), from the server's DisconnectSignal. Both are tested.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.fake_groq import FakeGroq, SlowStream, Stall
from tests.support.gateway import served

STALL = 20.0  # seconds the fake Groq holds the request: far longer than the client waits
PROTOCOLS = {"uvicorn's httptools": (), "make serve's": ("--http", "app.entrypoints.http.head_guard:HeadGuardedProtocol")}
CHAT = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", CHAT),
    ("/v1/completions", {"model": "gpt-3.5-turbo", "prompt": "hi"}),
    ("/v1/chat/completions", {**CHAT, "stream": True}),  # left before its first chunk
])
def test_an_abandoned_request_closes_its_upstream_call(fake_groq: FakeGroq, tmp_path: Path,
                                                       path: str, body: dict, protocol: str) -> None:
    with served(tmp_path, fake_groq, extra_args=PROTOCOLS[protocol], LOCAL_RUNNER="llamacpp",
                GROQ_TIMEOUT_SECONDS=str(STALL * 2), GROQ_FIRST_CHUNK_TIMEOUT_SECONDS=str(STALL * 2),
                FALLBACK_TO_LOCAL="false") as gateway:
        fake_groq.script(Stall(STALL))
        with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes its connection
            httpx.post(gateway.base_url + path, json=body, timeout=1.0,
                       headers={"authorization": f"Bearer {gateway.key}"})
        deadline = time.monotonic() + STALL / 2
        while fake_groq.abandoned == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake_groq.abandoned == 1  # the gateway closed its upstream call long before the stall ended
        # ... and the server still answers.
        fake_groq.script()
        response = httpx.post(gateway.base_url + path, json=body, timeout=10,
                              headers={"authorization": f"Bearer {gateway.key}"})
        assert response.status_code == 200, response.text
        assert "Traceback" not in gateway.server.log()


def test_a_stream_left_midway_closes_its_upstream_stream(fake_groq: FakeGroq, tmp_path: Path) -> None:
    """Under make serve's protocol (the SDK tests cover uvicorn's own)."""
    with served(tmp_path, fake_groq, extra_args=PROTOCOLS["make serve's"], LOCAL_RUNNER="llamacpp") as gateway:
        slow = SlowStream(chunks=400, interval=0.05)  # 20 s if nobody hangs up
        fake_groq.script(slow)
        with httpx.stream("POST", gateway.base_url + "/v1/chat/completions", json={**CHAT, "stream": True},
                          headers={"authorization": f"Bearer {gateway.key}"}, timeout=30) as response:
            for line in response.iter_lines():
                if '"content":"w0 "' in line:
                    break  # leaving the block closes the connection mid-stream
        deadline = time.monotonic() + 15
        while not slow.closed and time.monotonic() < deadline:
            time.sleep(0.05)

        assert slow.closed and not slow.completed
        assert slow.sent < slow.chunks
        assert "Traceback" not in gateway.server.log()
