"""A client that leaves cancels the work done for it: the real app under uvicorn, Groq at the fake Groq."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.fake_groq import FakeGroq, Stall
from tests.support.gateway import served

STALL = 20.0  # seconds the fake Groq holds the request: far longer than the client waits


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/completions", {"model": "gpt-3.5-turbo", "prompt": "hi"}),
    ("/v1/chat/completions", {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}],
                              "stream": True}),  # left before its first chunk
])
def test_an_abandoned_request_closes_its_upstream_call(fake_groq: FakeGroq, tmp_path: Path,
                                                                    path: str, body: dict) -> None:
    with served(tmp_path, fake_groq, LOCAL_RUNNER="llamacpp", GROQ_TIMEOUT_SECONDS=str(STALL * 2),
                GROQ_FIRST_CHUNK_TIMEOUT_SECONDS=str(STALL * 2),
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
