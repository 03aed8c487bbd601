"""No secret in any log line: canaries for every secret, a real uvicorn, JSON logs at debug level.

The server gets canary values for GROQ_API_KEY (the fake Groq's key), ADMIN_SECRET
and KEY_SECRET (derived keys, so the client key comes from it), then serves
successes, streams, a failover to the real local model (llama.cpp, the fast one),
upstream errors that echo the key, wrong keys, a lockout and validation failures.
Every line it printed is searched for every canary, and for the prompt text.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.fake_groq import FAKE_GROQ_KEY, Fail, FakeGroq, groq_error
from tests.support.server import AppServer

ADMIN_CANARY = "adminCANARY-4f1c9e7b2d"
KEY_SECRET_CANARY = "keysecretCANARY-8b3e5a1f0c6d2e9a7b4c1d8e"
WRONG_KEY_CANARY = "sk-WRONGclientKEYcanary0123456789abcdef"
PROMPT_CANARY = "promptCANARY-what-is-the-secret-plan"


@pytest.mark.model
def test_no_secret_or_prompt_reaches_any_log_line(fake_groq: FakeGroq, tmp_path: Path) -> None:
    env = {"GROQ_API_KEY": FAKE_GROQ_KEY, "GROQ_BASE_URL": fake_groq.base_url, "ADMIN_SECRET": ADMIN_CANARY,
           "KEY_STORE": "derived", "KEY_SECRET": KEY_SECRET_CANARY, "LOG_FORMAT": "json", "LOG_LEVEL": "debug",
           "LOCAL_RUNNER": "llamacpp", "LOCAL_CONTEXT_TOKENS": "1024", "LOCAL_MAX_TOKENS": "4",
           "GROQ_MAX_RETRIES": "0", "AUTH_MAX_FAILURES": "3", "CIRCUIT_FAILURE_THRESHOLD": "50"}
    with AppServer(tmp_path, env) as server:
        url = server.base_url
        client_key = httpx.get(f"{url}/current-key", headers={"admin-secret": ADMIN_CANARY}).json()["api_key"]
        auth = {"authorization": f"Bearer {client_key}"}
        chat = {"model": "llama-3.3-70b-versatile", "messages": [{"role": "user", "content": PROMPT_CANARY}]}
        statuses = []

        def post(body: object, headers: dict[str, str] = auth, path: str = "/v1/chat/completions") -> None:
            response = httpx.post(f"{url}{path}", json=body, headers=headers, timeout=120)
            statuses.append(response.status_code)

        post(chat)  # success
        with httpx.stream("POST", f"{url}/v1/chat/completions", json={**chat, "stream": True}, headers=auth,
                          timeout=60) as streamed:
            streamed.read()
            statuses.append(streamed.status_code)
        fake_groq.script(Fail(503, groq_error(f"overloaded, key {FAKE_GROQ_KEY}", type_="server_error")))
        post(chat)  # failover to the local model
        fake_groq.script(Fail(400, groq_error(f"bad request from Bearer {FAKE_GROQ_KEY}", param=FAKE_GROQ_KEY,
                                              code=FAKE_GROQ_KEY)))
        post(chat)  # an upstream client error that echoes the server's key
        fake_groq.script(Fail(401, groq_error(f"Invalid API Key {FAKE_GROQ_KEY}", code="invalid_api_key")))
        post(chat)  # Groq refuses the server's key: 502
        post({"messages": [{"role": "user", "content": PROMPT_CANARY}], "temperature": client_key})  # 400
        post({"messages": client_key}, path="/chat/completions")  # 400
        post({"prompt": [PROMPT_CANARY, client_key]}, path="/v1/completions")  # 400
        httpx.post(f"{url}/chat", content=b"{not json " + client_key.encode(), headers=auth)
        httpx.get(f"{url}/current-key", headers={"admin-secret": ADMIN_CANARY + "x"})
        httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {ADMIN_CANARY}"})
        for _ in range(4):  # wrong keys, then the lockout
            post(chat, headers={"authorization": f"Bearer {WRONG_KEY_CANARY}"})
        log = server.log()

    assert statuses[:5] == [200, 200, 200, 400, 502], statuses
    assert statuses[-1] == 429 and 401 in statuses[-4:]
    access = [json.loads(line) for line in log.splitlines() if '"logger": "app.access"' in line]
    assert len(access) >= len(statuses), "one JSON line per request"
    assert any(line["fallback_reason"] == "server_error" and line["provider"] == "local" for line in access)
    for canary in (FAKE_GROQ_KEY, ADMIN_CANARY, KEY_SECRET_CANARY, client_key, WRONG_KEY_CANARY, PROMPT_CANARY):
        leaks = [line for line in log.splitlines() if canary in line]
        assert not leaks, f"a log line carries a secret or prompt: {leaks[0][:300]}"
